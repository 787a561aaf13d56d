#pragma once

#include <string>
#include <vector>

namespace sockhook {

/// One finding of `sockhook doctor`.
struct Check {
  enum class Level { kOk, kWarn, kFail } level;
  std::string what;
  std::string advice;  ///< what to do about it, if anything
};

/// Checks the host (SPEC §6 doctor): hook, libvirt, QEMU's user, plugins, policy, config,
/// kernel features, ACL support, AppArmor/SELinux.
std::vector<Check> check_host();

/// Prints the checks; returns 1 if any failed.
int print_checks(const std::vector<Check>& checks);

}  // namespace sockhook
