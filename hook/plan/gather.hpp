#pragma once

#include "plan/plan.hpp"

namespace sockhook {

/// Everything that planning reads from the host, owned in one place.
struct Gathered {
  DomainInfo domain;
  PluginSet plugins;
  Policy policy;
  PlanInputs inputs;  ///< points into the members above; do not copy a Gathered
  Gathered() = default;
  Gathered(const Gathered&) = delete;
  Gathered& operator=(const Gathered&) = delete;
};

/// Where gather looks. Tests point these at temporary files.
struct GatherOptions {
  std::vector<PluginDir> plugin_dirs = default_plugin_dirs();
  std::vector<uid_t> trusted_uids = {0};
  std::string policy_path = sockhook::policy_path();
  std::string qemu_conf_path = "/etc/libvirt/qemu.conf";
  Paths paths;
  bool probe_sources = true;  ///< look whether sources exist (for auto and for acl listings)
  /// Probe also the sources of sockets the policy does not allow: only `plan`'s review, for
  /// whoever runs it. The hook never looks at what the policy has not allowed (issue 22).
  bool probe_unallowed = false;
};

/// Stage one: root's rules, the plugins and the policy. Reads nothing of any owner's.
void load_rules(Gathered& g, const GatherOptions& options);

/// The policy gate, between load_rules and gather_host: nullopt when the policy allows this
/// domain anything; else the one refusal to report: the first domain-level error of the XML
/// if there is one, else the policy's. Reads only the user database, to name the owner; never
/// an owner's files, whatever the XML says.
std::optional<Problem> policy_refusal(const Gathered& g);

/// Stage two: users, QEMU's identity, and the facts of the sources the policy allows (all
/// sources with `probe_unallowed`). Problems that concern one socket end up in the plan, not
/// as exceptions; throws Error only for host-level failures (no QEMU user).
void gather_host(Gathered& g, const GatherOptions& options);

/// Parses nothing: load_rules, then gather_host, for a parsed domain. Throws Error only for
/// host-level failures (an untrusted policy file, no QEMU user).
void gather(Gathered& g, const GatherOptions& options);

}  // namespace sockhook
