#include "model/policy.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

namespace fs = std::filesystem;

constexpr const char* kA = "3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b01";
constexpr const char* kB = "8f9e0d1c-2b3a-4c5d-9e6f-7a8b9c0d1e2f";

std::string two_domains() {
  return std::string("# comment\n[") + kA + "]\nalice = pipewire pulseaudio\n1001 = *\n\n[" + kB +
         "]\nalice = wayland\n";
}

TEST_CASE("A policy file parses into one rule per owner line") {
  auto p = Policy::parse(two_domains());
  REQUIRE(p.rules().size() == 3);
  CHECK(p.rules()[0].uuid == kA);
  CHECK(p.rules()[0].owner == "alice");
  CHECK(p.rules()[0].plugins == std::vector<std::string>{"pipewire", "pulseaudio"});
  CHECK(p.rules()[1].owner == "1001");
  CHECK(p.rules()[1].plugins == std::vector<std::string>{"*"});
  CHECK(p.rules()[2].uuid == kB);
  CHECK(p.rules()[2].plugins == std::vector<std::string>{"wayland"});
}

TEST_CASE("An empty policy denies everything") {
  auto p = Policy::parse("");
  CHECK(p.rules().empty());
  CHECK_FALSE(p.allows(kA, "alice", 1000, "pipewire"));
  CHECK_FALSE(Policy{}.allows(kA, "alice", 1000, "pipewire"));
}

TEST_CASE("allows matches domain, owner by name or uid, and plugin") {
  auto p = Policy::parse(two_domains());
  struct Ask {
    const char* uuid;
    const char* owner;
    uid_t uid;
    const char* plugin;
    bool allowed;
  };
  // By name; by uid, with the wildcard; another user with the same uid text is not alice.
  const Ask asks[] = {
      {kA, "alice", 1000, "pipewire", true},   {kA, "alice", 1000, "pulseaudio", true},
      {kA, "alice", 1000, "wayland", false},   {kB, "alice", 1000, "wayland", true},
      {kB, "alice", 1000, "pipewire", false},  {kA, "bob", 1001, "pipewire", true},
      {kA, "bob", 1001, "anything", true},     {kB, "bob", 1001, "wayland", false},
      {kA, "alicia", 1000, "pipewire", false}, {kA, "", 1000, "pipewire", false}};
  for (const auto& a : asks) {
    CAPTURE(a.uuid);
    CAPTURE(a.owner);
    CAPTURE(a.plugin);
    CHECK(p.allows(a.uuid, a.owner, a.uid, a.plugin) == a.allowed);
  }
  SUBCASE("the UUID is compared case-insensitively") {
    CHECK(p.allows("3F6C1A52-8D7E-4B1F-9A0C-2E5D7F8A9B01", "alice", 1000, "pipewire"));
    auto upper = Policy::parse("[3F6C1A52-8D7E-4B1F-9A0C-2E5D7F8A9B01]\nalice = pipewire\n");
    CHECK(upper.rules()[0].uuid == kA);
    CHECK(upper.allows(kA, "alice", 1000, "pipewire"));
  }
  SUBCASE("a '*' plugin name in a request is not a wildcard for a specific rule") {
    CHECK_FALSE(p.allows(kB, "alice", 1000, "*"));
  }
}

TEST_CASE("format and parse round-trip") {
  auto p = Policy::parse(two_domains());
  auto text = p.format();
  CHECK(text.starts_with("# sockhook policy"));
  CHECK(text.find(std::string("[") + kA + "]\nalice = pipewire pulseaudio\n1001 = *\n") !=
        std::string::npos);
  auto again = Policy::parse(text);
  REQUIRE(again.rules().size() == p.rules().size());
  for (std::size_t i = 0; i < p.rules().size(); ++i) {
    CHECK(again.rules()[i].uuid == p.rules()[i].uuid);
    CHECK(again.rules()[i].owner == p.rules()[i].owner);
    CHECK(again.rules()[i].plugins == p.rules()[i].plugins);
  }
  CHECK(again.format() == text);
}

TEST_CASE("A domain and owner named twice become one rule, so that format round-trips") {
  // Found by policy_fuzz: two sections for one UUID, each with a line for alice.
  auto text = std::string("[") + kA + "]\nalice = pipewire pulseaudio\n[" + kA +
              "]\nalice = pipewire wayland\n";
  auto p = Policy::parse(text);
  REQUIRE(p.rules().size() == 1);
  CHECK(p.rules()[0].plugins == std::vector<std::string>{"pipewire", "pulseaudio", "wayland"});
  auto again = Policy::parse(p.format());
  REQUIRE(again.rules().size() == 1);
  CHECK(again.rules()[0].plugins == p.rules()[0].plugins);
}

TEST_CASE("allow and revoke are idempotent") {
  Policy p;
  CHECK(p.allow(kA, "alice", "pipewire"));
  CHECK_FALSE(p.allow(kA, "alice", "pipewire"));
  CHECK(p.allow("3F6C1A52-8D7E-4B1F-9A0C-2E5D7F8A9B01", "alice", "wayland"));
  REQUIRE(p.rules().size() == 1);
  CHECK(p.rules()[0].uuid == kA);
  CHECK(p.rules()[0].plugins == std::vector<std::string>{"pipewire", "wayland"});
  CHECK(p.allows(kA, "alice", 1000, "wayland"));

  CHECK(p.revoke(kA, "alice", "pipewire"));
  CHECK_FALSE(p.revoke(kA, "alice", "pipewire"));
  CHECK_FALSE(p.allows(kA, "alice", 1000, "pipewire"));
  CHECK(p.allows(kA, "alice", 1000, "wayland"));
  CHECK_FALSE(p.revoke(kA, "bob", "wayland"));
  CHECK_FALSE(p.revoke(kB, "alice", "wayland"));

  SUBCASE("revoking the last plugin removes the rule") {
    CHECK(p.revoke(kA, "alice", "wayland"));
    CHECK(p.rules().empty());
  }
  SUBCASE("revoking with no plugin removes them all") {
    CHECK(p.allow(kA, "alice", "jack"));
    CHECK(p.allow(kB, "alice", "jack"));
    CHECK(p.revoke(kA, "alice", ""));
    CHECK_FALSE(p.revoke(kA, "alice", ""));
    REQUIRE(p.rules().size() == 1);
    CHECK(p.rules()[0].uuid == kB);
  }
  SUBCASE("'*' is revoked only as '*'") {
    CHECK(p.allow(kA, "bob", "*"));
    CHECK_FALSE(p.revoke(kA, "bob", "pipewire"));
    CHECK(p.allows(kA, "bob", 1001, "pipewire"));
    CHECK(p.revoke(kA, "bob", "*"));
    CHECK_FALSE(p.allows(kA, "bob", 1001, "pipewire"));
  }
}

TEST_CASE("Malformed policies are an Error") {
  SUBCASE("a section that is not a UUID") {
    CHECK_THROWS_WITH_AS(Policy::parse("[win11]\nalice = pipewire\n"),
                         "cannot parse policy: section [win11] is not a domain UUID", Error);
  }
  SUBCASE("a key outside any section") {
    CHECK_THROWS_WITH_AS(Policy::parse("alice = pipewire\n"),
                         "cannot parse policy: 'alice' must be inside a [domain-uuid] section",
                         Error);
  }
  SUBCASE("a plugin that is not a plugin name (it would not survive format)") {
    CHECK_THROWS_WITH_AS(
        Policy::parse(std::string("[") + kA + "]\nalice = `pipewire pulseaudio`\n"),
        "cannot parse policy: 'pipewire pulseaudio' is not a plugin name or '*'", Error);
    CHECK_THROWS_AS(Policy::parse(std::string("[") + kA + "]\nalice = ../x\n"), Error);
  }
  SUBCASE("an owner that is not a user name") {
    CHECK_THROWS_WITH_AS(Policy::parse(std::string("[") + kA + "]\nal]ice = pipewire\n"),
                         "cannot parse policy: 'al]ice' is not a user name or uid", Error);
  }
  SUBCASE("a nested section") {
    CHECK_THROWS_AS(Policy::parse(std::string("[") + kA + ".x]\nalice = pipewire\n"), Error);
  }
}

TEST_CASE("policy_path is under the system configuration directory") {
  CHECK(policy_path() == "/etc/sockhook/policy.conf");
}

TEST_CASE("load_policy treats a missing file as default deny") {
  TempDir dir;
  auto p = load_policy((dir.path / "policy.conf").string());
  CHECK(p.rules().empty());
}

TEST_CASE("load_policy trusts only a root-owned file that others cannot write") {
  SKIP_UNLESS_ROOT("ownership checks need root (files of ordinary users are never trusted)");
  TempDir dir;
  auto path = (dir.path / "policy.conf").string();
  std::ofstream(path) << two_domains();
  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  SUBCASE("a good file loads") {
    auto p = load_policy(path);
    CHECK(p.rules().size() == 3);
  }
  SUBCASE("writable by others") {
    REQUIRE(::chmod(path.c_str(), 0646) == 0);
    CHECK_THROWS_WITH_AS(load_policy(path),
                         ("policy " + path + " is refused: it is writable by others").c_str(),
                         Error);
  }
  SUBCASE("owned by nobody") {
    REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);
    CHECK_THROWS_WITH_AS(
        load_policy(path),
        ("policy " + path + " is refused: it is owned by uid 65534, not root").c_str(), Error);
  }
  SUBCASE("a symlink is not followed") {
    auto link = (dir.path / "link.conf").string();
    REQUIRE(::symlink(path.c_str(), link.c_str()) == 0);
    CHECK_THROWS_AS(load_policy(link), Error);
  }
  SUBCASE("malformed content names the file") {
    std::ofstream(path) << "[nope]\nalice = x\n";
    CHECK_THROWS_WITH_AS(
        load_policy(path),
        (path + ": cannot parse policy: section [nope] is not a domain UUID").c_str(), Error);
  }
  SUBCASE("save_policy writes what load_policy reads back") {
    Policy p;
    p.allow(kB, "alice", "pipewire");
    auto out = (dir.path / "sub" / "policy.conf").string();
    save_policy(p, out);
    struct stat st {};
    REQUIRE(::stat(out.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);
    auto back = load_policy(out);
    REQUIRE(back.rules().size() == 1);
    CHECK(back.allows(kB, "alice", 1000, "pipewire"));
  }
}

}  // namespace
}  // namespace sockhook
