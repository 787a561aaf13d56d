// Who receives a lend (issue 9 item 2) and what a grant would bring (issue 11 part 3): the
// identity decision, the policy's qemu line, and the plan of blocked sockets. Pure: no host
// lookups, hand-built identities and users.
#include <algorithm>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "fixtures.hpp"
#include "host/qemu_identity.hpp"
#include "model/policy.hpp"
#include "plan/plan_text.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

const std::string kUuid = "5b7d9f1a-3c5e-4a6b-8d0f-2a4c6e8a0b1c";

QemuIdentity configured() { return {64055, 64055, "libvirt-qemu", "libvirt-qemu", "qemu.conf"}; }
QemuIdentity label(uid_t uid, gid_t gid, const std::string& user, bool is_static = true) {
  return {uid, gid, user, user, is_static ? "static seclabel" : "DAC label"};
}

TEST_CASE("decide_qemu_identity: configured, allowed by the policy, or refused") {
  struct Case {
    const char* what;
    QemuIdentity qemu;
    std::optional<QemuIdentity> conf;
    std::vector<AllowedIdentity> allowed;
    IdentityVerdict verdict;
    const char* why_has;
  };
  const std::vector<AllowedIdentity> bob{{"bob:bob", 1001, 1001}};
  const Case cases[] = {
      {"no label: the configuration is what root chose",
       configured(),
       std::nullopt,
       {},
       IdentityVerdict::kConfigured,
       "configured"},
      {"libvirt's dynamic label naming the configured uid and gid",
       label(64055, 64055, "+64055", false),
       configured(),
       {},
       IdentityVerdict::kConfigured,
       "names QEMU's configured identity"},
      {"a static label naming another user",
       label(1001, 1001, "bob"),
       configured(),
       {},
       IdentityVerdict::kRefused,
       "names neither QEMU's configured identity (libvirt-qemu"},
      {"the configured user with another group is another identity",
       label(64055, 1001, "libvirt-qemu"),
       configured(),
       {},
       IdentityVerdict::kRefused,
       "neither"},
      {"the policy allows exactly that uid and gid", label(1001, 1001, "bob"), configured(), bob,
       IdentityVerdict::kAllowedByPolicy, "qemu = bob:bob"},
      {"the policy's identity with another gid does not match", label(1001, 0, "bob"), configured(),
       bob, IdentityVerdict::kRefused, "neither"},
      {"a dynamic label naming another uid",
       label(1001, 1001, "bob", false),
       configured(),
       {},
       IdentityVerdict::kRefused,
       "the DAC label names neither"},
      {"no configured identity resolves: a label needs the policy",
       label(64055, 64055, "x"),
       std::nullopt,
       {},
       IdentityVerdict::kRefused,
       "none resolves"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    auto d = decide_qemu_identity(c.qemu, c.conf, c.allowed);
    CHECK(d.verdict == c.verdict);
    CHECK_MESSAGE(contains(d.why, c.why_has), d.why);
    const char* prefix = c.verdict == IdentityVerdict::kConfigured ? "identity configured: "
                         : c.verdict == IdentityVerdict::kAllowedByPolicy
                             ? "identity allowed by the policy: "
                             : "identity refused: ";
    CHECK(d.text() == prefix + d.why);
  }
}

TEST_CASE("The policy's qemu line parses, formats and round-trips") {
  auto text = "[" + kUuid + "]\nqemu = bob:bob +1001:+1001\nalice = pipewire\n";
  auto p = Policy::parse(text);
  CHECK(p.qemu_identities(kUuid) == std::vector<std::string>{"bob:bob", "+1001:+1001"});
  REQUIRE(p.rules().size() == 1);
  CHECK(p.rules()[0].owner == "alice");  // "qemu" is not an owner
  CHECK_FALSE(p.allows(kUuid, "qemu", 64055, "pipewire"));
  auto again = Policy::parse(p.format());
  CHECK(again.qemu_identities(kUuid) == p.qemu_identities(kUuid));
  CHECK(contains(p.format(), "qemu = bob:bob +1001:+1001\n"));
  SUBCASE("a section with only a qemu line survives format") {
    Policy q;
    CHECK(q.allow_qemu(kUuid, "bob:bob"));
    CHECK_FALSE(q.allow_qemu(kUuid, "bob:bob"));
    CHECK(Policy::parse(q.format()).qemu_identities(kUuid) == std::vector<std::string>{"bob:bob"});
    CHECK(q.revoke_qemu(kUuid, "bob:bob"));
    CHECK_FALSE(q.revoke_qemu(kUuid, "bob:bob"));
    CHECK(q.qemu_identities(kUuid).empty());
  }
  SUBCASE("identities are per domain") {
    CHECK(p.qemu_identities("8f9e0d1c-2b3a-4c5d-9e6f-7a8b9c0d1e2f").empty());
  }
}

TEST_CASE("An owner named like the qemu key is recorded by uid") {
  CHECK(policy_owner_key("qemu", 1005) == "1005");
  CHECK(policy_owner_key("alice", 1000) == "alice");
  Policy p;
  p.allow(kUuid, policy_owner_key("qemu", 1005), "*");
  auto again = Policy::parse(p.format());
  CHECK(again.allows(kUuid, "qemu", 1005, "pipewire"));
  CHECK(again.qemu_identities(kUuid).empty());
}

TEST_CASE("A malformed qemu identity in the policy is an Error") {
  check_accepts_only([](const std::string& s) { return is_valid_qemu_identity(s); },
                     {"bob:bob", "+1001:+1001", "1001:kvm", "libvirt-qemu:kvm"},
                     {"bob", "bob:", ":bob", "bob:bob:bob", "b ob:x", "+x:1", "+:1"});
  CHECK_THROWS_AS(Policy::parse("[" + kUuid + "]\nqemu = bob\n"), Error);
}

/// A domain whose sockets no policy allows yet, QEMU as configured, alice as the owner.
struct Fixture : PlanFixture {
  explicit Fixture(const std::string& sockets) : PlanFixture(sockets, "", kUuid) {
    in.qemu = configured();
    in.configured_qemu = configured();
    in.owners = {{"alice", User{1000, 1000, "alice", "/home/alice"}}};
    in.uids = UidRange{1000, 60000};
  }
};

/// Checks how many sockets `plan` lends now and how many wait for a grant.
void check_lent_and_blocked(const Plan& plan, std::size_t lent, std::size_t blocked) {
  REQUIRE(plan.sockets.size() == lent);
  REQUIRE(plan.blocked.size() == blocked);
}

TEST_CASE("plan of an unallowed domain shows what the grant would bring, blocked") {
  Fixture f("<s:socket plugin='pulseaudio' owner='alice' method='bind'/>");
  auto plan = f.plan();
  const std::string grant =
      "sockhook policy allow --domain " + kUuid + " --owner alice --plugin pulseaudio";
  // The hook's view: nothing to execute, and the start fails as before.
  CHECK(plan.failed());
  check_executes_nothing(plan);
  CHECK(only_text(plan.errors) ==
        "pulseaudio: the policy does not allow alice to lend 'pulseaudio' to this domain "
        "(hint: " +
            grant + ")");
  // The reviewer's view: the full plan of the socket, marked blocked.
  REQUIRE(plan.blocked.size() == 1);
  const auto& b = plan.blocked[0];
  REQUIRE(b.blocked_by.size() == 1);
  CHECK(b.blocked_by[0].hint == grant);
  CHECK(b.steps.size() == 6);  // verify, target, bind, ACL, cookie, client.conf: as if allowed
  CHECK(std::holds_alternative<BindMount>(b.steps[2]));
  REQUIRE(plan.blocked_domain_steps.size() == 1);
  CHECK(std::holds_alternative<MakeLendDir>(plan.blocked_domain_steps[0]));

  auto text = format_plan(plan);
  CHECK(contains(text, "BLOCKED by policy"));
  CHECK(contains(text, "  [blocked] 1. create lend directory"));
  CHECK(
      contains(text, "[blocked] 4. bind-mount the verified inode of /run/user/1000/pulse/native"));
  CHECK(contains(text, "grant with: " + grant));
  CHECK(contains(text, "PULSE_SERVER=unix:/run/sockhook/libvirt-" + kUuid + "/pulse-native"));
  CHECK(contains(text, "nothing to lend until the policy allows it"));

  auto j = plan_to_json(plan);
  REQUIRE(j["sockets"].size() == 1);
  const auto& s = j["sockets"][0];
  CHECK(s["blocked"] == true);
  CHECK(s["blocked_by"][0]["grant"] == grant);
  CHECK(s["steps"].size() == 6);
  for (const auto& step : s["steps"]) CHECK(step["blocked"] == true);
  for (const auto& e : s["env"]) CHECK(e["blocked"] == true);
  REQUIRE(j["steps"].size() == 1);
  CHECK(j["steps"][0]["blocked"] == true);

  SUBCASE("once allowed, the same steps are planned and nothing is blocked") {
    f.policy.allow(kUuid, "alice", "*");
    auto allowed = f.plan();
    CHECK_FALSE(allowed.failed());
    check_lent_and_blocked(allowed, 1, 0);
    CHECK(allowed.sockets[0].steps.size() == b.steps.size());
    auto aj = plan_to_json(allowed);
    CHECK(aj["sockets"][0]["blocked"] == false);
    CHECK(aj["steps"][0]["blocked"] == false);
    CHECK_FALSE(contains(format_plan(allowed), "blocked"));
  }
  SUBCASE("an optional blocked socket is skipped with a warning, still never executed") {
    Fixture g("<s:socket plugin='pipewire' owner='alice' required='no'/>");
    auto p = g.plan();
    CHECK_FALSE(p.failed());
    check_lent_and_blocked(p, 0, 1);
    CHECK(contains(only_text(p.warnings), "(optional socket skipped)"));
  }
}

TEST_CASE("A blocked socket is refused by the policy alone; its source's ACL is for review") {
  // The socket's ACL names other users: bind would widen them. Unallowed, the refusal must
  // say the policy refused and show nobody's ACL entries (issue 22 item 4).
  Fixture f("<s:socket plugin='pipewire' owner='alice' method='bind'/>");
  SourceFacts facts;
  facts.exists = true;
  facts.socket_gains = std::vector<std::string>{"user:4321:rw-", "group:4322:rw-"};
  f.in.sources["pipewire"] = facts;
  auto plan = f.plan();
  CHECK(plan.failed());
  check_executes_nothing(plan);
  auto refusal = only_text(plan.errors);
  CHECK(contains(refusal, "the policy does not allow alice to lend 'pipewire'"));
  CHECK_FALSE(contains(refusal, "4321"));
  REQUIRE(plan.blocked.size() == 1);
  auto review = texts(plan.blocked[0].warnings);
  CHECK(std::any_of(review.begin(), review.end(), [](const std::string& w) {
    return contains(w, "once allowed: cannot add ACL entry u:") && contains(w, "user:4321:rw-");
  }));

  SUBCASE("once allowed, the same ACL refuses the socket") {
    f.policy.allow(kUuid, "alice", "*");
    auto allowed = f.plan();
    CHECK(allowed.failed());
    CHECK(contains(only_text(allowed.errors), "user:4321:rw-"));
  }
}

TEST_CASE("A DAC label naming another identity blocks every socket until the policy allows it") {
  Fixture f(
      "<s:socket plugin='pipewire' owner='alice' method='bind'/>"
      "<s:socket plugin='wayland' owner='alice' method='proxy'/>");
  f.policy.allow(kUuid, "alice", "*");
  f.in.qemu = label(1001, 1001, "bob");
  auto plan = f.plan();
  CHECK(plan.qemu_decision.verdict == IdentityVerdict::kRefused);
  check_lent_and_blocked(plan, 0, 2);
  REQUIRE(plan.errors.size() == 2);
  const std::string fix = "sockhook policy allow --domain " + kUuid + " --qemu bob:bob";
  CHECK(plan.errors[0].socket == "pipewire");
  CHECK(plan.errors[0].hint == fix);
  CHECK(contains(plan.errors[0].message,
                 "QEMU would run as bob:bob (uid 1001, gid 1001, from static seclabel)"));
  CHECK(contains(plan.errors[0].message, "identity refused"));
  CHECK(plan.errors[1].socket == "wayland");
  CHECK(contains(format_plan(plan), "identity refused"));
  CHECK(plan_to_json(plan)["qemu"]["verdict"] == "refused");

  SUBCASE("allowed by the policy: lent to that identity") {
    f.in.allowed_qemu = {{"bob:bob", 1001, 1001}};
    auto allowed = f.plan();
    CHECK_FALSE(allowed.failed());
    CHECK(allowed.qemu_decision.verdict == IdentityVerdict::kAllowedByPolicy);
    REQUIRE(allowed.sockets.size() == 2);
    const auto& acl = std::get<GrantAcl>(allowed.sockets[0].steps[3]);
    CHECK(acl.uid == 1001);
    const auto& proxy = std::get<StartProxy>(allowed.sockets[1].steps[0]);
    CHECK(proxy.qemu_uid == 1001);
    CHECK(proxy.qemu_gid == 1001);
    CHECK(contains(format_plan(allowed), "identity allowed by the policy: qemu = bob:bob"));
  }
  SUBCASE("both the owner and the identity blocked: one line each") {
    Fixture g("<s:socket plugin='pipewire' owner='alice'/>");
    g.in.qemu = label(1001, 1001, "bob");
    auto p = g.plan();
    REQUIRE(p.errors.size() == 2);
    CHECK(contains(p.errors[0].message, "the policy does not allow alice"));
    CHECK(contains(p.errors[1].message, "identity refused"));
    REQUIRE(p.blocked.size() == 1);
    CHECK(p.blocked[0].blocked_by.size() == 2);
  }
}

}  // namespace
}  // namespace sockhook
