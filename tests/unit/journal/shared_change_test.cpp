#include "journal/shared_change.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "test_files.hpp"

namespace sockhook {
namespace {

InodeId inode_at(const std::filesystem::path& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return inode_of(st);
}

InodeId inode_of_fd(const Fd& fd) {
  struct stat st {};
  REQUIRE(::fstat(fd.get(), &st) == 0);
  return inode_of(st);
}

/// An acl entry as prepare records it for the socket `name` in `dir`.
AclGranted entry_for(const TempDir& dir, const std::string& name) {
  AclGranted e;
  e.path = (dir.path / name).string();
  e.base = dir.path.string();
  e.relative = name;
  e.set_inode(inode_at(dir.path / name));
  return e;
}

}  // namespace

TEST_CASE("release finds a changed inode again only where dev/ino still match") {
  TempDir dir;
  auto sock = bound_socket(dir.path / "s");
  auto e = entry_for(dir, "s");
  SUBCASE("the same inode under the same name") {
    auto found = reopen_recorded_inode(e);
    REQUIRE(found.fd);
    CHECK(inode_of_fd(found.fd) == e.inode());
    CHECK_FALSE(found.unsure);
  }
  SUBCASE("another socket under the name (the server restarted): surely gone") {
    std::filesystem::remove(dir.path / "s");
    auto again = bound_socket(dir.path / "s");
    REQUIRE_FALSE(inode_at(dir.path / "s") == e.inode());
    auto found = reopen_recorded_inode(e);
    CHECK_FALSE(found.fd);
    CHECK_FALSE(found.unsure);
  }
  SUBCASE("the runtime directory is gone: surely gone") {
    e.base = (dir.path / "no-such-dir").string();
    auto found = reopen_recorded_inode(e);
    CHECK_FALSE(found.fd);
    CHECK_FALSE(found.unsure);
  }
  SUBCASE("nothing, a file or a symlink under the name: perhaps renamed, so unsure") {
    std::filesystem::rename(dir.path / "s", dir.path / "renamed");
    SUBCASE("nothing") {}
    SUBCASE("a regular file") { dir.write("s", "x"); }
    SUBCASE("a symlink to the very inode, which is not followed") {
      std::filesystem::create_symlink(dir.path / "renamed", dir.path / "s");
    }
    auto found = reopen_recorded_inode(e);
    CHECK_FALSE(found.fd);
    CHECK(found.unsure);
  }
  SUBCASE("through the mount target") {
    TempDir lend;
    Fd other;
    SUBCASE("the target shows the inode when its name is gone") {
      REQUIRE(::link((dir.path / "s").c_str(), (lend.path / "target").c_str()) == 0);
      std::filesystem::remove(dir.path / "s");
    }
    SUBCASE("a target that shows another inode is not trusted; the name decides") {
      other = bound_socket(lend.path / "target");
    }
    e.via_target = (lend.path / "target").string();
    auto found = reopen_recorded_inode(e);
    REQUIRE(found.fd);
    CHECK(inode_of_fd(found.fd) == e.inode());
  }
}

TEST_CASE("a change on the runtime directory itself is found through the base") {
  TempDir dir;
  GroupChanged e;
  e.base = dir.path.string();
  e.set_inode(inode_at(dir.path));
  auto found = reopen_recorded_inode(e);
  REQUIRE(found.fd);
  CHECK(inode_of_fd(found.fd) == e.inode());
  e.ino += 1;  // a directory recreated under the same name
  found = reopen_recorded_inode(e);
  CHECK_FALSE(found.fd);
  CHECK_FALSE(found.unsure);
}

}  // namespace sockhook
