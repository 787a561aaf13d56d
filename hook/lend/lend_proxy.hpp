#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "journal/transaction.hpp"
#include "sys/fd.hpp"

namespace sockhook {

/// A listening unix socket at `name` in the root-only lend directory `dir`, owned by QEMU's
/// user (`uid`, `gid`), never more open than 0600 (S4). Shared by the proxy and context lends.
Fd make_listen_socket(const Fd& dir, const std::string& name, uid_t uid, gid_t gid);

/// A lend served by a process running as the owner (the proxy, the context holder): its
/// journal entry (ProxyStarted) is recorded before anything exists, then the listening socket's
/// inode, then the process's pid and start time before it runs as the owner (R3), so that
/// release stops exactly this process and removes exactly this socket.
class ServedLend {
 public:
  /// A new lend at `listen_path`, which must be in the run's lend directory (Error if not).
  ServedLend(SocketRun& run, const std::string& listen_path, uid_t owner);
  /// Entry `index` of `tx` again, for a restart: its old process and socket are gone.
  ServedLend(Transaction& tx, std::size_t index, const std::string& label);
  /// make_listen_socket in `dir` for QEMU's user, and its inode recorded.
  Fd listen(const Fd& dir, uid_t qemu_uid, gid_t qemu_gid);
  /// For spawn_proxy and spawn_as_owner: records the child's pid and start time.
  std::function<void(pid_t, unsigned long long)> recorder();
  const std::string& label() const { return entry_.label; }

 private:
  Transaction& tx_;
  std::size_t index_;
  ProxyStarted entry_;
  std::string path_;
};

/// StartProxy: creates the listening socket in the lend directory as root (never more open
/// than 0600, then owned by QEMU's user), and starts a proxy process as the owner
/// (spawn_proxy). Records the socket's inode before the spawn, and the pid and start time
/// before the child runs as the owner, so that a later process stops exactly this proxy.
void run_step(SocketRun& run, const StartProxy& step);

/// True if the process of a ProxyStarted runs: its pid exists and has the recorded start time.
bool proxy_alive(const ProxyStarted& entry);

/// Stops the recorded process (pidfd, checked start time; nothing else, never "whoever holds
/// the socket") and removes the listening socket. Returns what it could not do, or nullopt.
UndoProblem stop_served(const ProxyStarted& entry);

/// Undoes a ProxyStarted (a proxy or a context's holder): stop_served.
UndoProblem undo(const ProxyStarted& entry, const Undoing& u);

/// status: broken when the process is not running (refresh and reconnect restart it).
void check_health(const ProxyStarted& entry, const Journal& j, const JournalSocket& s,
                  LendHealth& h);

/// reconnect and refresh, for a proxy and a context's holder alike: stops entry `index`'s old
/// process (if it still runs) and its socket, then `launch` starts a new one on the same entry
/// in the lend directory of `listen_path`. Returns "<what>: <problem>" if that fails, or what
/// the stop could not do, or nullopt.
UndoProblem relaunch(Transaction& tx, std::size_t index, const std::string& label,
                     const std::string& listen_path, const std::string& what,
                     const std::function<void(ServedLend&, const Fd&)>& launch);

/// reconnect: starts entry `index`'s proxy again on a fresh listening socket at the same path
/// and records the new pid. Returns what it could not do, or nullopt.
UndoProblem restart_proxy(Transaction& tx, std::size_t index, const StartProxy& step,
                          const ExecContext& ctx, const std::string& label, gid_t qemu_gid);

}  // namespace sockhook
