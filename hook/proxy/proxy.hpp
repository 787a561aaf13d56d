#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "host/domain_cgroup.hpp"
#include "sys/fd.hpp"

namespace sockhook {

/// Limits that bound the proxy's memory (S6): per connection at most 2 x max_queued_bytes of
/// queue (only while bytes wait; an idle connection holds none) and max_queued_fds
/// descriptors per direction; in total max_connections times that, 64 MiB of queue by default.
struct ProxyLimits {
  /// Bytes queued in one direction of one connection before the proxy stops reading the
  /// sending side (back-pressure). Also the size of that direction's buffer.
  size_t max_queued_bytes = 64 * 1024;
  /// File descriptors queued in one direction before the proxy stops reading that side.
  size_t max_queued_fds = 256;
  /// Clients served at the same time; further clients are accepted and closed at once, with
  /// a log line.
  size_t max_connections = 512;
};

/// What a proxy process serves.
struct ProxyOptions {
  /// Absolute path of the real socket; connected once per accepted client (lazy).
  std::string connect_path;
  /// Only clients whose SO_PEERCRED uid equals this are served. The default, (uid_t)-1,
  /// matches nobody.
  uid_t peer_uid = static_cast<uid_t>(-1);
  /// Per-connection caps.
  ProxyLimits limits;
  /// When set, a client is served only if it is also in this domain's cgroup (S10): every
  /// VM's QEMU has the same uid, so the uid alone does not tell this VM from another. A peer
  /// whose cgroup cannot be read is refused. `sockhook proxy` requires it; only tests and
  /// benchmarks of the relay leave it unset.
  std::optional<DomainCgroup> peer_domain;
  /// Take the peer's pidfd from the kernel (SO_PEERPIDFD) where it can; false makes the proxy
  /// use the fallback of older kernels (tests).
  bool kernel_peer_pidfd = true;
};

/// Runs the relay on an already-listening SOCK_STREAM unix socket until SIGTERM/SIGINT, or
/// until the listening socket fails. Returns an exit code (0 after a signal). Logs (syslog,
/// identifier "sockhook") refused peers and connection errors.
int run_proxy(Fd listen_fd, const ProxyOptions& options);

/// Like run_proxy, but stops when `stop_fd` becomes readable instead of on signals (for
/// tests and benchmarks that run the relay in a thread). Does not touch the signal mask.
int run_proxy_until(Fd listen_fd, const ProxyOptions& options, int stop_fd);

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
/// did not exec in time, or exec failed.
ProxyProcess spawn_proxy(const std::string& exe, Fd listen_fd, const ProxyOptions& options,
                         uid_t owner_uid, gid_t owner_gid, const std::string& label,
                         const RecordProxy& record = {});

/// What spawn_proxy does, for any internal subcommand: forks, gives the child only
/// `listen_fd` (as fd 3) and /dev/null on 0, 1 and 2, waits as root for `record`, drops to the
/// owner with the same hardening, and execs `exe` with `args` (args[0] is the program name).
/// `what` names the process in errors ("the proxy for win11/pipewire"). The same bounded waits.
/// A valid `report_fd` becomes the child's fd 4 (how a child says whether it got going).
ProxyProcess spawn_as_owner(const std::string& exe, Fd listen_fd, std::vector<std::string> args,
                            uid_t owner_uid, gid_t owner_gid, const std::string& what,
                            const RecordProxy& record = {}, const Fd& report_fd = Fd());

/// Stops a proxy through its pidfd: SIGTERM, a wait of up to 2 s, then SIGKILL. Reaps it
/// if it is our child. Harmless if it already exited.
void stop_proxy(int pidfd);

/// Parses the internal `sockhook proxy ...` arguments and calls run_proxy. `argv` holds
/// the `argc` arguments after the word "proxy" (no program name). Returns 2 on bad usage.
int proxy_command(int argc, char** argv);

}  // namespace sockhook
