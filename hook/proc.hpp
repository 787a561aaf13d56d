#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

#include "sys/fd.hpp"

namespace sockhook {

// What /proc and pidfds tell about processes. Nothing here changes the host.

/// The start time of a process (field 22 of /proc/PID/stat), or 0 if it does not exist.
unsigned long long process_starttime(pid_t pid);

/// The state letter of a process (field 3 of /proc/PID/stat: R, S, Z...), or 0.
char process_state(pid_t pid);

/// A pidfd for `pid` (invalid if it does not exist or `pid` is not positive).
Fd pidfd_open(pid_t pid);

/// A pidfd for `pid` only if it is still the process that started at `starttime`.
Fd pidfd_if_same(pid_t pid, unsigned long long starttime);

/// libvirt's status files of running QEMU domains (root's, written by libvirtd).
inline constexpr const char* kLibvirtQemuStatusDir = "/run/libvirt/qemu";
/// Status files larger than this are not libvirt's.
inline constexpr std::size_t kMaxStatusFileBytes = 16 << 20;

/// True if the QEMU of domain `uuid` runs, by a record no other user can fake: libvirt's
/// root-owned status file (`status_dir`/<name>.xml) names the uuid and a pid, and that
/// process lives, started before the file was last written, and has `-uuid <uuid>` in its
/// arguments. Reads files only: works without libvirtd, never calls libvirt.
bool qemu_running(const std::string& uuid, const std::string& status_dir = kLibvirtQemuStatusDir);

}  // namespace sockhook
