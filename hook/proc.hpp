#pragma once

#include <sys/types.h>

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

/// Processes (other than this one) that hold the socket inode `ino` (/proc/PID/fd/N).
std::vector<pid_t> holders_of_socket(unsigned long long ino);

/// True if a QEMU process with `-uuid <uuid>` runs (from /proc/*/cmdline).
bool qemu_running(const std::string& uuid);

}  // namespace sockhook
