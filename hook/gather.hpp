#pragma once

#include "plan.hpp"

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
};

/// Parses nothing: takes a parsed domain and looks up plugins, policy, users, QEMU's identity
/// and source facts. Problems that concern one socket end up in the plan, not as exceptions;
/// throws Error only for host-level failures (an untrusted policy file, no QEMU user).
void gather(Gathered& g, const GatherOptions& options);

}  // namespace sockhook
