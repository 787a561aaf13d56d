#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sockhook {

/// Where libvirt puts one running domain's QEMU in the cgroup tree, as far as the proxy needs
/// it to tell that QEMU from every other VM's (S10). libvirt moves QEMU there before it execs,
/// so before it can connect to anything, and only root can move it out (LIBVIRT-NOTES, "When
/// libvirt runs the hook"). Two layouts:
///   without systemd: <partition>/qemu-<id>-<machine name>.libvirt-qemu[/emulator|/vcpuN...]
///   with systemd:    <partition as slices>/machine-qemu\x2d<id>\x2d<machine name>.scope[/...]
/// The domain id is what makes the place unique among running domains: the machine name is
/// the domain's name shortened to hostname characters, so "acc cg ü" and "acccg" share one,
/// and it is not matched at all.
struct DomainCgroup {
  long id = -1;                        ///< libvirt's domain id; -1 before the domain runs
  std::string partition = "/machine";  ///< <resource><partition>, libvirt's default otherwise

  /// The journal and command-line form: "<id>:<partition>", e.g. "5:/machine".
  std::string to_string() const;
  /// Reads that form back; nullopt if it is malformed (the id must be a number, -1 for none
  /// yet, and the partition an absolute path without "." or ".." components).
  static std::optional<DomainCgroup> parse(std::string_view s);
};

/// The places of `d` in both layouts, as matched, for messages: "/machine/qemu-5[-*].libvirt-qemu
/// or /machine.slice/machine-qemu\x2d5[\x2d*].scope" ("<id>" while the domain has none).
std::string describe_domain_cgroup(const DomainCgroup& d);

/// Whether one cgroup path (as in /proc/PID/cgroup, e.g. "/machine/qemu-5-win11.libvirt-qemu/
/// emulator") lies in domain `d`'s cgroup in either layout: the path starts with the
/// partition and its next component is the domain's own. Pure.
bool cgroup_path_in_domain(std::string_view path, const DomainCgroup& d);

/// Whether a process whose /proc/PID/cgroup reads `proc_cgroup` is in domain `d`'s cgroup:
/// some hierarchy places it there. Only root can put a process into a hierarchy's domain
/// cgroup, so one such line is proof, whatever the other hierarchies say. Pure.
bool proc_cgroup_in_domain(std::string_view proc_cgroup, const DomainCgroup& d);

}  // namespace sockhook
