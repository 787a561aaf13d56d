#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "error.hpp"
#include "sys/resolve.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

namespace fs = std::filesystem;

/// A runtime directory owned by whoever runs the test, with a real listening socket.
struct Runtime {
  TempDir tmp;
  const fs::path& dir = tmp.path;
  uid_t owner = ::geteuid();

  Fd make_socket(const std::string& rel) const { return bound_socket(dir / rel); }
  SourceSpec spec(const std::string& rel, int wait = 0) const {
    return SourceSpec{dir.string(), rel, owner, wait};
  }
};

std::string why(const SourceSpec& spec) {
  try {
    resolve_source(spec);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a socket owned by the owner resolves, with its directory chain") {
  Runtime rt;
  fs::create_directory(rt.dir / "pulse");
  auto s = rt.make_socket("pulse/native");
  auto src = resolve_source(rt.spec("pulse/native"));
  CHECK(S_ISSOCK(src.st.st_mode));
  REQUIRE(src.dirs.size() == 2);
  CHECK(src.dirs[0].relative == "");
  CHECK(src.dirs[1].relative == "pulse");
  CHECK(src.dirs[1].path == (rt.dir / "pulse").string());
  struct stat st {};
  ::stat((rt.dir / "pulse/native").c_str(), &st);
  CHECK(inode_of(src.st) == inode_of(st));
}

TEST_CASE("resolution refuses every path game") {
  Runtime rt;
  auto s = rt.make_socket("real");
  SUBCASE("a symlink as the final component is not followed and is refused") {
    fs::create_symlink(rt.dir / "real", rt.dir / "link");
    CHECK(why(rt.spec("link")) == "not a socket (it is a symbolic link)");
  }
  SUBCASE("a symlink in the middle fails with ELOOP") {
    fs::create_directory(rt.dir / "d");
    fs::create_directory_symlink(rt.dir / "d", rt.dir / "pulse");
    auto s2 = rt.make_socket("d/native");
    try {
      resolve_source(rt.spec("pulse/native"));
      FAIL("resolved through a symlink");
    } catch (const Error& e) {
      CHECK(e.err() == ELOOP);
      CHECK(std::string(e.what()).find("symbolic link") != std::string::npos);
    }
  }
  SUBCASE("a FIFO is refused") {
    REQUIRE(::mkfifo((rt.dir / "fifo").c_str(), 0600) == 0);
    CHECK(why(rt.spec("fifo")) == "not a socket (it is a FIFO)");
  }
  SUBCASE("a regular file is refused") {
    rt.tmp.write("file", "", 0600);
    CHECK(why(rt.spec("file")) == "not a socket (it is a regular file)");
  }
  SUBCASE("escaping with .. is refused") {
    CHECK(!why(rt.spec("../" + rt.dir.filename().string() + "/real")).empty());
  }
  SUBCASE("a second hard link is refused") {
    fs::create_hard_link(rt.dir / "real", rt.dir / "twin");
    CHECK(why(rt.spec("real")) == "it has 2 hard links (expected 1)");
  }
  SUBCASE("a runtime directory of someone else is refused") {
    auto spec = rt.spec("real");
    spec.owner = rt.owner + 1;
    CHECK(why(spec).find("not by the owner") != std::string::npos);
  }
  SUBCASE("a socket owned by someone else is refused") {
    SKIP_UNLESS_ROOT("only root can give a socket away");
    // The directory belongs to the owner, the socket to another user.
    auto spec = rt.spec("real");
    spec.owner = 2345;
    REQUIRE(::chown(rt.dir.c_str(), 2345, 2345) == 0);
    CHECK(why(spec) == "it is owned by uid 0, not by the owner (uid 2345)");
  }
  SUBCASE("a runtime directory that is a symlink is refused") {
    auto link = rt.dir.string() + "-link";
    fs::create_directory_symlink(rt.dir, link);
    auto spec = rt.spec("real");
    spec.base = link;
    CHECK(!why(spec).empty());
    fs::remove(link);
  }
}

TEST_CASE("a missing socket is waited for, and only as long as allowed") {
  Runtime rt;
  SUBCASE("no wait: fails at once") {
    auto t0 = std::chrono::steady_clock::now();
    CHECK(why(rt.spec("late")).find("does not exist") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500));
  }
  SUBCASE("it appears (in a directory that does not exist yet) while we wait") {
    Fd s;
    std::thread maker([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      fs::create_directory(rt.dir / "pulse");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      s = rt.make_socket("pulse/native");
    });
    auto t0 = std::chrono::steady_clock::now();
    auto src = resolve_source(rt.spec("pulse/native", 5));
    auto took = std::chrono::steady_clock::now() - t0;
    maker.join();
    CHECK(S_ISSOCK(src.st.st_mode));
    CHECK(took < std::chrono::seconds(2));
  }
  SUBCASE("it never appears: fails after the wait") {
    auto t0 = std::chrono::steady_clock::now();
    CHECK(why(rt.spec("never", 1)) == "it does not exist (waited 1 s)");
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= std::chrono::milliseconds(900));
    CHECK(took < std::chrono::milliseconds(1900));
  }
}

}  // namespace sockhook
