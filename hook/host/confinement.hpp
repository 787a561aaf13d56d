#pragma once

#include <string>
#include <vector>

#include "base/check.hpp"

namespace sockhook {

/// The warning for a lend that points QEMU at the socket's original path (methods acl and
/// group): AppArmor tells VMs apart only by their lend directories, so the rule QEMU needs for
/// `path` is one that reaches every VM. Pure text, for plan and doctor.
std::string original_path_apparmor_warning(const std::string& method, const std::string& path);

/// Whether the kernel has AppArmor enabled: <root>/sys/module/apparmor/parameters/enabled
/// reads Y.
bool apparmor_enabled(const std::string& root = "/");

/// Whether libvirt confines each VM's QEMU with a profile of its own: the kernel has AppArmor
/// enabled and libvirt's template for those profiles, <root>/etc/apparmor.d/libvirt/
/// TEMPLATE.qemu, is installed (libvirt's AppArmor driver is then its default).
bool libvirt_confines_with_apparmor(const std::string& root = "/");

/// Whether the kernel's AppArmor decides connect() to a socket by its path (fine-grained
/// af_unix mediation: <root>/sys/kernel/security/apparmor/features/network_v9/af_unix or
/// network/af_unix), and the feature set policy is compiled against (parser.conf's
/// policy-features, which Debian pins) has it too. Debian 13's 6.12 has only network_v8
/// (socket families), and so has Debian's pinned set: there a profile refuses opening another
/// VM's files but not connecting to its sockets (tests/root/aa_confinement.sh, that kernel).
bool apparmor_mediates_unix_sockets(const std::string& root = "/");

/// Why every VM's QEMU can connect to a socket in another VM's lend directory here, or "" when
/// nothing can: libvirt confines each VM's QEMU with an AppArmor profile of its own and the
/// kernel mediates connect() by path. All QEMUs share one uid, so without that only the
/// proxy's cgroup check keeps one VM's lends from another (S10).
std::string vm_lend_separation_gap(const std::string& root = "/");

/// The refusal for a lend that points QEMU at the socket's original path (methods acl and
/// group) where the kernel's AppArmor mediates connecting to sockets: QEMU's profile has no
/// rule for /run/user, and the rule that would allow it reaches every VM.
std::string original_path_apparmor_refusal(const std::string& method, const std::string& path);

/// Checks, by parsing the files under <root>/etc/apparmor.d, that every VM's profile includes
/// sockhook's per-VM rules: TEMPLATE.qemu includes abstractions/libvirt-qemu, which includes
/// its drop-in directory or the local file, which holds /run/sockhook/@{profile_name}/ rules
/// (dist/apparmor/sockhook). Flags a rule that opens /run/sockhook to every VM.
std::vector<Check> check_apparmor_rules(const std::string& root = "/");

/// doctor's section on mandatory access control: the AppArmor rules when the kernel has
/// AppArmor enabled, and what works and what does not when SELinux is present.
std::vector<Check> check_confinement(const std::string& root = "/");

}  // namespace sockhook
