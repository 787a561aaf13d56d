#pragma once

// The life of a process sockhook starts as the owner (a proxy, a context's holder): forked
// as root, recorded in the journal before it runs anything as the owner, dropped to the owner
// with nothing of the hook's, exec'd within a bound, and stopped through its pidfd.

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "proxy/relay.hpp"
#include "sys/fd.hpp"

namespace sockhook {

/// Identity of the proxy's process.
struct ProxyProcess {
  pid_t pid = -1;
  Fd pidfd;
};

/// Called by spawn_proxy with the child's pid and start time while the child, still root,
/// waits: it runs no code as the owner before this returns. Meant to make the identity
/// durable (the journal), so that whoever stops the proxy later knows exactly which process
/// it is. Throwing aborts the spawn (the child exits without running anything).
using RecordProxy = std::function<void(pid_t pid, unsigned long long starttime)>;

/// Longest spawn_proxy waits for the child to exec once it runs as the owner (who can stop
/// it, e.g. with SIGSTOP); then the child is killed and reaped within kSpawnReapMs.
inline constexpr int kSpawnTimeoutMs = 5000;
inline constexpr int kSpawnReapMs = 1000;

/// Forks a proxy: the child gets only `listen_fd` (as fd 3) and /dev/null on 0, 1 and 2,
/// starts its own session, waits as root until `record` returned (the parent's go-ahead;
/// EOF instead means the parent died, and the child exits), drops to owner_uid/owner_gid
/// (supplementary groups exactly {owner_gid}, no_new_privs, checked that root cannot be
/// regained), and execs `exe` as
/// `sockhook proxy --listen-fd 3 --connect PATH --peer-uid N --peer-domain ID:PARTITION
/// --label LABEL`. `options.peer_domain` must be set: a lend's proxy never serves by uid alone.
/// `label` (e.g. "win11/pipewire") only shows in ps. Every wait is bounded: a child that has not
/// exec'd within kSpawnTimeoutMs is killed. Throws Error if the child could not be set up,
/// did not exec in time, or exec failed. A valid `connect_fd` becomes the child's fd 4 (a
/// socket it connects to through /proc/self/fd/4: a context socket behind the proxy).
ProxyProcess spawn_proxy(const std::string& exe, Fd listen_fd, const ProxyOptions& options,
                         uid_t owner_uid, gid_t owner_gid, const std::string& label,
                         const RecordProxy& record = {}, const Fd& connect_fd = Fd());

/// What spawn_proxy does, for any internal subcommand: forks, gives the child only
/// `listen_fd` (as fd 3) and /dev/null on 0, 1 and 2, waits as root for `record`, drops to the
/// owner with the same hardening, and execs `exe` with `args` (args[0] is the program name).
/// `what` names the process in errors ("the proxy for win11/pipewire"). The same bounded waits.
/// A valid `fd4` is a descriptor the child gets as fd 4: the holder's report pipe, or the
/// context socket a proxy connects through.
ProxyProcess spawn_as_owner(const std::string& exe, Fd listen_fd, std::vector<std::string> args,
                            uid_t owner_uid, gid_t owner_gid, const std::string& what,
                            const RecordProxy& record = {}, const Fd& fd4 = Fd());

/// Stops a proxy through its pidfd: SIGTERM, a wait of up to 2 s, then SIGKILL. Reaps it
/// if it is our child. Harmless if it already exited.
void stop_proxy(int pidfd);

}  // namespace sockhook
