#include "commands/doctor.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "fixtures.hpp"
#include "plan/plan.hpp"

// doctor's judgements on facts handed in: libvirt installed or not, an autostarted domain's
// plan, whether its owner lingers. Nothing here asks this host's libvirt or users.

namespace sockhook {
namespace {

using Level = Check::Level;

QemuIdentity no_identity() { throw Error("QEMU's user libvirt-qemu does not exist"); }

TEST_CASE("doctor says 'install libvirt' for QEMU's user where libvirt is not installed") {
  auto check = qemu_user_check(LibvirtFacts{false}, no_identity);
  CHECK(check.level == Level::kFail);
  CHECK(contains(check.what, "libvirt is not installed"));
  CHECK(contains(check.advice, "install libvirt"));
  CHECK_FALSE(contains(check.advice, "qemu.conf"));
}

TEST_CASE("doctor points at qemu.conf for QEMU's user where libvirt is installed") {
  auto check = qemu_user_check(LibvirtFacts{true}, no_identity);
  CHECK(check.level == Level::kFail);
  CHECK(check.advice == "set user and group in /etc/libvirt/qemu.conf");
  auto fine = qemu_user_check(LibvirtFacts{true}, default_qemu);
  CHECK(fine.level == Level::kOk);
  CHECK(contains(fine.what, "QEMU runs as libvirt-qemu"));
}

/// An autostarted domain's plan with one lend of `method` from alice's runtime directory
/// (or from `source`).
Plan autostarted(Method method, bool required = true,
                 const std::string& source = "/run/user/1000/pipewire-0") {
  Plan plan;
  plan.domain = "Windows 11";
  SocketPlan s;
  s.request.name = "pipewire";
  s.request.plugin = "pipewire";
  s.request.owner = "alice";
  s.request.method = method;
  s.request.required = required;
  s.owner = User{1000, 1000, "alice", "/home/alice"};
  s.method = method == Method::kAuto ? Method::kProxy : method;
  s.source = source;
  plan.sockets.push_back(s);
  return plan;
}

bool never_lingers(const User&) { return false; }

TEST_CASE("doctor warns in one line for each autostarted lend that needs the owner's session") {
  SUBCASE("bind needs the socket at start: a required lend keeps the VM from autostarting") {
    auto checks = autostart_checks(autostarted(Method::kBind), never_lingers);
    REQUIRE(checks.size() == 1);
    CHECK(checks[0].level == Level::kWarn);
    CHECK(checks[0].what.find('\n') == std::string::npos);
    CHECK(contains(checks[0].what, "autostart: Windows 11: pipewire: /run/user/1000/pipewire-0"));
    CHECK(contains(checks[0].what, "before alice logs in"));
    CHECK(contains(checks[0].what, "the VM does not autostart"));
    CHECK(contains(checks[0].advice, "loginctl enable-linger alice"));
    CHECK(contains(checks[0].advice, "virsh autostart --disable 'Windows 11'"));
  }
  SUBCASE("an optional acl lend: the VM autostarts without it") {
    auto checks = autostart_checks(autostarted(Method::kAcl, false), never_lingers);
    REQUIRE(checks.size() == 1);
    CHECK(contains(checks[0].what, "without this lend"));
  }
  SUBCASE("auto lends by proxy, which serves only once the owner's server runs") {
    auto checks = autostart_checks(autostarted(Method::kAuto), never_lingers);
    REQUIRE(checks.size() == 1);
    CHECK(contains(checks[0].what, "the proxy reaches it only once alice's server runs"));
  }
}

TEST_CASE("doctor does not warn about autostart where the socket can exist at boot") {
  SUBCASE("the owner lingers: logind starts their session at boot") {
    CHECK(autostart_checks(autostarted(Method::kBind), [](const User&) { return true; }).empty());
  }
  SUBCASE("an administrator's plugin names a socket outside the runtime directory") {
    CHECK(autostart_checks(autostarted(Method::kBind, true, "/run/pipewire/pipewire-0"),
                           never_lingers)
              .empty());
  }
}

const std::string kUuid = "3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b01";

/// doctor's checks of the plan of a domain with `sockets`, all of them allowed for alice.
std::vector<Check> checks_of(const std::string& sockets) {
  PlanFixture f(sockets, "", kUuid);
  f.policy.allow(kUuid, "alice", "*");
  f.in.qemu = default_qemu();
  f.in.owners = {{"alice", User{1000, 1000, "alice", "/home/alice"}}};
  f.in.uids = UidRange{1000, 60000};
  return check_plan(f.plan());
}

/// The checks whose text is exactly `what`.
std::vector<Check> with_text(const std::vector<Check>& checks, const std::string& what) {
  std::vector<Check> out;
  std::copy_if(checks.begin(), checks.end(), std::back_inserter(out),
               [&](const Check& c) { return c.what == what; });
  return out;
}

TEST_CASE("doctor says in one line per socket what the VM reaches that the server allows") {
  auto plugins = repo_plugin_set();
  auto checks = checks_of(
      "<s:socket plugin='pipewire' owner='alice' method='proxy'/>"
      "<s:socket plugin='wayland' owner='alice' method='proxy'/>");
  for (const auto* name : {"pipewire", "wayland"}) {
    CAPTURE(name);
    const auto& reach = plugins.find(name)->reach;
    REQUIRE_FALSE(reach.empty());
    auto found = with_text(checks, std::string(name) + ": unrestricted: " + reach);
    REQUIRE(found.size() == 1);
    CHECK(found[0].level == Check::Level::kWarn);  // said, without failing the check
  }
}

TEST_CASE("doctor says where it found a socket that has several places") {
  auto checks = checks_of("<s:socket plugin='wayland' owner='alice' method='proxy'/>");
  // Nobody looked at the host here: the first place, and how to see more.
  CHECK(with_text(checks,
                  "wayland: found could not look for wayland-0, wayland-1 (run as root or as "
                  "alice); planned as wayland-0, the first listed")
            .size() == 1);
}

}  // namespace
}  // namespace sockhook
