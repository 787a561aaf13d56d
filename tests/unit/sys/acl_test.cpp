#include "sys/acl.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "base/error.hpp"

namespace sockhook {
namespace {

namespace fs = std::filesystem;

constexpr uid_t kQemu = 64055;
constexpr uid_t kOther = 4242;

struct TempFile {
  fs::path dir, path;
  TempFile(mode_t mode) {
    char name[] = "/tmp/sockhook-acl-test-XXXXXX";
    dir = ::mkdtemp(name);
    path = dir / "sock";
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ::close(fd);
    ::chmod(path.c_str(), mode);
  }
  ~TempFile() { fs::remove_all(dir); }
};

/// Runs a shell command and returns its stdout.
std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf{};
  while (auto n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  ::pclose(p);
  return out;
}

/// Everything that must come back: the mode, the raw ACL xattr (or its absence), and what
/// getfacl prints (when getfacl is installed).
std::string snapshot(const fs::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  std::string out = "mode " + std::to_string(st.st_mode & 07777) + "\n";
  char buf[1024];
  auto n = ::getxattr(p.c_str(), "system.posix_acl_access", buf, sizeof buf);
  out += n < 0 ? std::string("no xattr\n")
               : "xattr " + std::string(buf, static_cast<std::size_t>(n)) + "\n";
  out += acl_text(p.string());
  if (fs::exists("/usr/bin/getfacl")) out += run("getfacl -p " + p.string() + " 2>&1");
  return out;
}

void setfacl(const fs::path& p, const std::string& spec) {
  REQUIRE(std::system(("setfacl -m '" + spec + "' " + p.string()).c_str()) == 0);
}

/// The perms of the named-user entry `uid` and of the mask, as getfacl would print them.
std::string entry_line(const fs::path& p, const std::string& prefix) {
  auto text = acl_text(p.string());
  auto at = text.find(prefix);
  if (at == std::string::npos) return "";
  return text.substr(at, text.find('\n', at) - at);
}

bool have_setfacl() { return fs::exists("/usr/bin/setfacl"); }

/// A file of `mode` with the ACL `spec` added, and its state before a grant to QEMU.
struct AclFile {
  TempFile f;
  std::string before;
  AclState prior;
  AclFile(mode_t mode, const std::string& spec) : f(mode) {
    setfacl(f.path, spec);
    before = snapshot(f.path);
    prior = read_acl_state(f.path, kQemu);
  }
  /// Revokes QEMU's entry again; the ACL must then be byte-identical to `before`.
  void revoke_and_check() {
    acl_revoke_user(f.path, kQemu, prior);
    CHECK(snapshot(f.path) == before);
  }
};

}  // namespace

TEST_CASE("permission text converts both ways") {
  struct Case {
    const char* text;
    Perms perms;
    const char* as_getfacl_prints_it;
  };
  for (const auto& c : {Case{"rw", 6, "rw-"}, Case{"x", 1, "--x"}, Case{"r-x", 5, "r-x"}}) {
    INFO(c.text);
    CHECK(parse_perms(c.text) == c.perms);
    CHECK(perms_text(c.perms) == c.as_getfacl_prints_it);
  }
  CHECK_THROWS_AS(parse_perms("rws"), Error);
}

TEST_CASE("granting and revoking on a file without an ACL leaves no xattr and the mode") {
  TempFile f(0640);
  auto before = snapshot(f.path);
  auto prior = read_acl_state(f.path, kQemu);
  CHECK_FALSE(prior.xattr);
  CHECK_FALSE(prior.mask);
  acl_grant_user(f.path, kQemu, 6);
  CHECK(entry_line(f.path, "user:" + std::to_string(kQemu)).ends_with(":rw-"));
  CHECK(entry_line(f.path, "mask::") == "mask::rw-");  // group r-- plus rw-
  CHECK(snapshot(f.path) != before);
  acl_revoke_user(f.path, kQemu, prior);
  CHECK(snapshot(f.path) == before);
  CHECK(::getxattr(f.path.c_str(), "system.posix_acl_access", nullptr, 0) < 0);
}

TEST_CASE("granting and revoking leaves an ACL byte-identical") {
  if (!have_setfacl()) return;
  SUBCASE("another named entry and a narrow mask it gains nothing from: widened, restored") {
    AclFile a(0600, "u:" + std::to_string(kOther) + ":r--,m::r--");
    REQUIRE(a.prior.mask == 4u);
    CHECK(acl_grant_gains(a.f.path, kQemu, 6).empty());
    acl_grant_user(a.f.path, kQemu, 6);
    CHECK(entry_line(a.f.path, "mask::") == "mask::rw-");
    CHECK(entry_line(a.f.path, "user:" + std::to_string(kOther)) ==
          "user:" + std::to_string(kOther) + ":r--");
    a.revoke_and_check();
  }
  SUBCASE("a pre-existing entry for QEMU's uid is put back as it was") {
    AclFile a(0600, "u:" + std::to_string(kQemu) + ":r--");
    REQUIRE(a.prior.entry == 4u);
    acl_grant_user(a.f.path, kQemu, 6);
    CHECK(entry_line(a.f.path, "user:" + std::to_string(kQemu)).ends_with(":rw-"));
    a.revoke_and_check();
  }
  SUBCASE("a named group and a mask of its own") {
    AclFile a(0750, "g:4343:r-x");
    acl_grant_user(a.f.path, kQemu, 1);
    a.revoke_and_check();
  }
  SUBCASE("setfacl -x alone would not have restored it (the mask stays behind)") {
    TempFile f(0640);
    auto before = snapshot(f.path);
    setfacl(f.path, "u:" + std::to_string(kQemu) + ":rw");
    REQUIRE(std::system(
                ("setfacl -x u:" + std::to_string(kQemu) + " " + f.path.string()).c_str()) == 0);
    CHECK(snapshot(f.path) != before);
  }
}

TEST_CASE("a grant that would widen the mask for others is refused, the ACL untouched") {
  if (!have_setfacl()) return;
  auto other = std::to_string(kOther);
  SUBCASE("a masked named user: u:bob:rw with mask::r-- (bob would gain w)") {
    AclFile a(0600, "u:" + other + ":rw-,m::r--");
    auto gains = acl_grant_gains(a.f.path, kQemu, 6);
    CHECK(gains == std::vector<std::string>{"user:" + other + ":rw-"});
    std::string what;
    try {
      acl_grant_user(a.f.path, kQemu, 6);
    } catch (const Error& e) {
      what = e.what();
    }
    CHECK(what.find("would widen the ACL mask and so also give user:" + other + ":rw-") !=
          std::string::npos);
    CHECK(snapshot(a.f.path) == a.before);
  }
  SUBCASE("the owning group and a named group, masked, on a directory's x") {
    AclFile a(0750, "g:4343:r-x,m::r--");
    auto gains = acl_grant_gains(a.f.path, kQemu, 1);
    CHECK(gains == std::vector<std::string>{"group::r-x", "group:4343:r-x"});
    CHECK_THROWS_AS(acl_grant_user(a.f.path, kQemu, 1), Error);
    CHECK(snapshot(a.f.path) == a.before);
  }
  SUBCASE("QEMU's own masked entry does not count; nor does a mask that already allows") {
    AclFile a(0600, "u:" + std::to_string(kQemu) + ":rw-,u:" + other + ":rw-,m::rw-");
    CHECK(acl_grant_gains(a.f.path, kQemu, 6).empty());
    AclFile b(0600, "u:" + std::to_string(kQemu) + ":rw-,u:" + other + ":r--,m::r--");
    CHECK(acl_grant_gains(b.f.path, kQemu, 6).empty());
  }
  SUBCASE("no ACL at all: the new mask gives the owning group nothing new") {
    TempFile f(0660);
    CHECK(acl_grant_gains(f.path, kQemu, 6).empty());
  }
}

TEST_CASE("access checks follow POSIX.1e: owner, named user, groups, other") {
  TempFile f(0604);
  struct stat st {};
  ::stat(f.path.c_str(), &st);
  std::vector<gid_t> groups{static_cast<gid_t>(kQemu)};
  CHECK(acl_allows(f.path, st, kQemu, groups, 4));
  CHECK_FALSE(acl_allows(f.path, st, kQemu, groups, 6));
  CHECK(acl_allows(f.path, st, st.st_uid, groups, 6));
  // The file's group matches but grants nothing: other's r-- does not apply then.
  CHECK_FALSE(acl_allows(f.path, st, kQemu, {st.st_gid}, 4));
  if (!have_setfacl()) return;
  setfacl(f.path, "u:" + std::to_string(kQemu) + ":rw,m::r--");
  ::stat(f.path.c_str(), &st);
  CHECK(acl_allows(f.path, st, kQemu, groups, 4));
  CHECK_FALSE(acl_allows(f.path, st, kQemu, groups, 6));  // masked
  setfacl(f.path, "m::rw-");
  CHECK(acl_allows(f.path, st, kQemu, groups, 6));
}

}  // namespace sockhook
