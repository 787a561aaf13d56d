#pragma once

#include <string>
#include <vector>

#include "check.hpp"

namespace sockhook {

/// The warning for a lend that points QEMU at the socket's original path (methods acl and
/// group): AppArmor tells VMs apart only by their lend directories, so the rule QEMU needs for
/// `path` is one that reaches every VM. Pure text, for plan and doctor.
std::string original_path_apparmor_warning(const std::string& method, const std::string& path);

/// Whether the kernel has AppArmor enabled: <root>/sys/module/apparmor/parameters/enabled
/// reads Y.
bool apparmor_enabled(const std::string& root = "/");

/// Checks, by parsing the files under <root>/etc/apparmor.d, that every VM's profile includes
/// sockhook's per-VM rules: TEMPLATE.qemu includes abstractions/libvirt-qemu, which includes
/// its drop-in directory or the local file, which holds /run/sockhook/@{profile_name}/ rules
/// (dist/apparmor/sockhook). Flags a rule that opens /run/sockhook to every VM.
std::vector<Check> check_apparmor_rules(const std::string& root = "/");

/// doctor's section on mandatory access control: the AppArmor rules when the kernel has
/// AppArmor enabled, and what works and what does not when SELinux is present.
std::vector<Check> check_confinement(const std::string& root = "/");

}  // namespace sockhook
