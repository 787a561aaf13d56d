#include "doctor.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "fixtures.hpp"
#include "plan.hpp"

namespace sockhook {
namespace {

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
