#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "sys/fd.hpp"

namespace sockhook {

/// The one way sockhook drops root, in a forked child only: sets the supplementary groups
/// (exactly `groups`, or {gid} if empty), the real/effective/saved gid and uid, and
/// no_new_privs, then checks that root cannot be regained (setuid(0) fails) and that no
/// capability is left. Refuses uid 0. Returns false if any step failed; the child must then
/// _exit.
bool drop_privileges(uid_t uid, gid_t gid, const std::vector<gid_t>& groups = {});

/// In a forked child: /dev/null becomes fds 0-2, `keep` becomes fd 3, and every other
/// descriptor is closed (root's lock, state and lend directories, and the hook's stdout and
/// stderr, which libvirt waits on, never reach a child that may outlive the hook).
/// Async-signal-safe. False if a step failed; the child must then _exit.
bool keep_only(int keep, int devnull);

/// Waits at most `ms` for our child `pid` to end (through `pidfd`, or polling if it is
/// invalid) and reaps it into `status`. False, leaving it unreaped, if it has not ended.
bool reap_within(pid_t pid, const Fd& pidfd, int ms, int& status);

/// What a child run by run_as_user produced.
struct ChildOutput {
  int status = 0;      ///< the child's exit code (or 128+signal)
  std::string output;  ///< what it wrote to its pipe, at most max_bytes + 1
};

/// Forks; the child keeps only /dev/null (as fds 0-2) and the pipe's write end (fd 3, passed
/// to `body`), closing every other descriptor, then drops to uid/gid and calls `body(3)`, whose
/// return value is its exit code. The parent reads at most `max_bytes` + 1 bytes from the pipe
/// (so that "too much" is visible) for at most `timeout_ms`, then reaps the child, waiting at
/// most 1 s more (killing it first if it has not ended). Throws Error if fork fails, or if the
/// child does not finish in time (killed; abandoned if it does not die either). Never waits
/// longer than timeout_ms + 2 s in all. `groups` as for drop_privileges. The child exits 125
/// if it could not close descriptors or drop privileges.
ChildOutput run_as_user(uid_t uid, gid_t gid, const std::function<int(int)>& body,
                        std::size_t max_bytes, int timeout_ms,
                        const std::vector<gid_t>& groups = {});

}  // namespace sockhook
