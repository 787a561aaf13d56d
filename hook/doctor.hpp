#pragma once

#include <string>
#include <vector>

#include "check.hpp"

namespace sockhook {

/// Checks the host (SPEC §6 doctor): hook, libvirt, QEMU's user, plugins, policy, config,
/// kernel features, ACL support, AppArmor/SELinux.
std::vector<Check> check_host();

/// Where `sockhook doctor DOMAIN` reads the domain from.
struct DomainCheckOptions {
  std::string domain;   ///< name or UUID, read through libvirt
  std::string file;     ///< or an XML file
  std::string connect;  ///< libvirt URI
};

/// Checks one domain (SPEC §6 doctor DOMAIN): everything that would stop its lends, found
/// before it starts: the plan's errors and warnings (policy, missing environment), the hook,
/// whether QEMU's user can reach the lend directory, the source sockets right now, and the
/// AppArmor or SELinux rule to add.
std::vector<Check> check_domain(const DomainCheckOptions& options);

struct Plan;

/// The checks of one domain's plan: its errors and warnings, and per socket the policy's
/// allowance, the environment, where the source was found, whether it is there now, and what
/// the VM can reach that the server does not restrict (S9).
std::vector<Check> check_plan(const Plan& plan);

/// Prints the checks; returns 1 if any failed.
int print_checks(const std::vector<Check>& checks);

}  // namespace sockhook
