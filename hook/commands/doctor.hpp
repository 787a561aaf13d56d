#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/check.hpp"
#include "host/qemu_identity.hpp"
#include "plan/plan.hpp"

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

/// What doctor reads about libvirt's installation, gathered once (tests make their own).
struct LibvirtFacts {
  bool installed = false;  ///< libvirt's QEMU daemon (libvirtd or virtqemud) is on the host
};

/// Looks for libvirtd or virtqemud in the usual sbin directories.
LibvirtFacts probe_libvirt();

/// The line about QEMU's user. `resolve` gives the identity or throws Error; where libvirt is
/// not installed, the cure is to install it, not to edit a qemu.conf that does not exist.
Check qemu_user_check(const LibvirtFacts& facts, const std::function<QemuIdentity()>& resolve);

/// One line per lend of an autostarted domain that needs its owner's runtime socket, which
/// cannot exist at boot before the owner logs in (SPEC §6 doctor; README "Autostart").
/// `lingers` says whether a user's runtime directory and services start at boot anyway
/// (`loginctl enable-linger`); those lends get no warning.
std::vector<Check> autostart_checks(const Plan& plan,
                                    const std::function<bool(const User&)>& lingers);

/// The checks of one domain's plan: its errors and warnings, and per socket the policy's
/// allowance, the environment, where the source was found, whether it is there now, and what
/// the VM can reach that the server does not restrict (S9).
std::vector<Check> check_plan(const Plan& plan);

/// Prints the checks; returns 1 if any failed.
int print_checks(const std::vector<Check>& checks);

}  // namespace sockhook
