#pragma once

// What the planning-side unit tests share: hand-built planning inputs around one domain, the
// small checks every one of them makes on a plan, and a table check for predicates. Pure: no
// host lookups.

#include <initializer_list>
#include <string>

#include <doctest/doctest.h>

#include "model/domain_xml.hpp"
#include "model/policy.hpp"
#include "plan/plan.hpp"
#include "repo_plugins.hpp"

namespace sockhook {

/// Checks that `accepts` holds for each of `good` and for none of `bad`.
template <class Predicate>
void check_accepts_only(Predicate accepts, std::initializer_list<std::string> good,
                        std::initializer_list<std::string> bad) {
  for (const auto& text : good) {
    CAPTURE(text);
    CHECK(accepts(text));
  }
  for (const auto& text : bad) {
    CAPTURE(text);
    CHECK_FALSE(accepts(text));
  }
}

/// QEMU as Debian's libvirt runs it by default.
inline QemuIdentity default_qemu() {
  return QemuIdentity{64055, 64055, "libvirt-qemu", "libvirt-qemu", "default"};
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// Plans `in` for `domain`, with `plugins` installed and `policy` in force.
inline Plan plan_with(PlanInputs in, const DomainInfo& domain, const PluginSet& plugins,
                      const Policy& policy) {
  in.domain = &domain;
  in.plugins = &plugins;
  in.policy = &policy;
  return make_plan(in);
}

/// A domain named vm1 whose metadata holds the sockhook <sockets> `sockets`, then `extra`;
/// the repository's plugins and an empty policy. Each test file fills in the rest of `in`.
struct PlanFixture {
  DomainInfo domain;
  PluginSet plugins = repo_plugin_set();
  Policy policy;
  PlanInputs in;

  PlanFixture(const std::string& sockets, const std::string& extra, const std::string& uuid) {
    domain = parse_domain_xml(
        "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>vm1</name>" +
        (uuid.empty() ? std::string() : "<uuid>" + uuid + "</uuid>") +
        "<metadata><s:sockets xmlns:s='urn:sockhook:domain:1'>" + sockets +
        "</s:sockets></metadata>" + extra + "</domain>");
    in.vm_separation_gap = "";  // as where an LSM keeps VMs apart; S10's tests set a gap
  }
  PlanFixture(const PlanFixture&) = delete;

  Plan plan() const { return plan_with(in, domain, plugins, policy); }
};

/// The single socket of `plan`; fails the test if there is not exactly one.
inline const SocketPlan& only_socket(const Plan& plan) {
  REQUIRE(plan.sockets.size() == 1);
  return plan.sockets[0];
}

/// The text of the single problem in `problems`; fails the test if there is not exactly one.
inline std::string only_text(const std::vector<Problem>& problems) {
  REQUIRE(problems.size() == 1);
  return problems[0].text();
}

/// Checks that `plan` gives the executor nothing to do: no socket and no domain step.
inline void check_executes_nothing(const Plan& plan) {
  CHECK(plan.sockets.empty());
  CHECK(plan.domain_steps.empty());
}

}  // namespace sockhook
