#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

#include "sys/fd.hpp"
#include "sys/pidfd.hpp"

namespace sockhook {

// What /proc and pidfds tell about processes. Nothing here changes the host.

/// The start time of a process (field 22 of /proc/PID/stat), or 0 if it does not exist.
unsigned long long process_starttime(pid_t pid);

/// The state letter of a process (field 3 of /proc/PID/stat: R, S, Z...), or 0.
char process_state(pid_t pid);

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

/// Who is at the other end of a connected unix socket: its uid, pid and /proc/PID/cgroup,
/// read so that the cgroup is the connecting process's and no other's (S10). The pid comes
/// from SO_PEERCRED and a pidfd from SO_PEERPIDFD (Linux 6.5), which names the very process
/// that connected; the cgroup is read and the pidfd then found still alive, so the pid had not
/// been reused during the read. Where the kernel lacks SO_PEERPIDFD (or `kernel_pidfd` is
/// false, for tests) the pidfd is opened from the pid, which leaves one window: the connecting
/// process exits and its pid is reused by a process in the expected cgroup between connect and
/// accept (docs/invariants.md, S10).
struct SocketPeer {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);
  std::string cgroup;   ///< /proc/PID/cgroup as read
  std::string problem;  ///< why the peer could not be identified ("" if it was)
};
SocketPeer read_socket_peer(int sock, bool kernel_pidfd = true);

}  // namespace sockhook
