#pragma once

// The relay: the `sockhook proxy` process, which serves one lent socket to the clients it
// checks (QEMU's uid in its own domain's cgroup, S10) within bounded memory (S6): the loop in
// proxy/relay.cpp, its queues in proxy/queue.hpp, its command line in proxy/proxy_command.cpp.
// Its start and stop by the hook are proxy/spawn.hpp.

#include <sys/types.h>

#include <cstddef>
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
  /// What the logs call this proxy: the hook's label ("DOMAIN/SOCKET UUID"), else the path.
  std::string label = {};
};

/// Runs the relay on an already-listening SOCK_STREAM unix socket until SIGTERM/SIGINT, or
/// until the listening socket fails. Returns an exit code (0 after a signal). Logs (syslog,
/// identifier "sockhook") refused peers and connection errors.
int run_proxy(Fd listen_fd, const ProxyOptions& options);

/// Like run_proxy, but stops when `stop_fd` becomes readable instead of on signals (for
/// tests and benchmarks that run the relay in a thread). Does not touch the signal mask.
int run_proxy_until(Fd listen_fd, const ProxyOptions& options, int stop_fd);

/// Parses the internal `sockhook proxy ...` arguments and calls run_proxy. `argv` holds
/// the `argc` arguments after the word "proxy" (no program name). Returns 2 on bad usage.
int proxy_command(int argc, char** argv);

}  // namespace sockhook
