#pragma once

#include <sys/types.h>

#include <functional>
#include <initializer_list>
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

/// The one place sockhook forks (the CLI's pkexec aside, which execs at once). In the child,
/// before anything else: the parent-death signal is SIGKILL (and a parent already gone ends
/// it), /dev/null becomes fds 0-2, `keep[i]` becomes fd 3+i, and every other descriptor is
/// closed. So no child holds root's descriptors (the domain's lock, the state and lend
/// directories) or the hook's stdout and stderr, for which libvirt waits, and a child that
/// does not exec dies with the hook (R4, R6). Returns the child's pid in the parent (-1 with
/// errno if fork failed) and 0 in the child, which exits 125 itself if a step failed.
/// At most 6 descriptors are kept. The child may call only async-signal-safe functions.
pid_t fork_child(int devnull, std::initializer_list<int> keep);

/// In a child: SIGKILL when the process that forked us (`parent`) ends; false if it has ended
/// already (the signal would never come). A change of credentials clears the parent-death
/// signal, so a child calls this again after drop_privileges. Async-signal-safe.
bool die_with_parent(pid_t parent);

/// Waits at most `ms` for our child `pid` to end (through `pidfd`, or polling if it is
/// invalid) and reaps it into `status`. False, leaving it unreaped, if it has not ended.
bool reap_within(pid_t pid, const Fd& pidfd, int ms, int& status);

/// Ends our child `pid`: reaps it within `ms` if `ending` (it is exiting by itself), otherwise,
/// or when it has not ended by then, kills it (SIGKILL ends a stopped process too) and reaps
/// it within `ms` more. False if it is still there: a process the kernel cannot end at once
/// (D state, in a request to a FUSE server that never answers) is abandoned to init, which
/// reaps it whenever it ends, rather than waited for.
bool end_child(pid_t pid, const Fd& pidfd, int ms, int& status, bool ending);
/// Kills and reaps our child `pid` (end_child, not ending by itself), its status unwanted.
inline bool kill_child(pid_t pid, const Fd& pidfd, int ms) {
  int status = 0;
  return end_child(pid, pidfd, ms, status, false);
}

/// What a child run by run_as_user produced.
struct ChildOutput {
  int status = 0;      ///< the child's exit code (or 128+signal)
  std::string output;  ///< what it wrote to its pipe, at most max_bytes + 1
};

/// Forks (fork_child); the child keeps only /dev/null (as fds 0-2) and the pipe's write end
/// (fd 3, passed to `body`), drops to uid/gid, dies with its parent still, and calls `body(3)`,
/// whose return value is its exit code. The parent reads at most `max_bytes` + 1 bytes from the
/// pipe (so that "too much" is visible) for at most `timeout_ms`, then reaps the child, waiting at
/// most 1 s more (killing it first if it has not ended). Throws Error if fork fails, or if the
/// child does not finish in time (killed; abandoned if it does not die either). Never waits
/// longer than timeout_ms + 2 s in all. `groups` as for drop_privileges. The child exits 125
/// if it could not close descriptors or drop privileges.
ChildOutput run_as_user(uid_t uid, gid_t gid, const std::function<int(int)>& body,
                        std::size_t max_bytes, int timeout_ms,
                        const std::vector<gid_t>& groups = {});

}  // namespace sockhook
