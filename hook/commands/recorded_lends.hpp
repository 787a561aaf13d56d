#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/paths.hpp"
#include "model/policy.hpp"

namespace sockhook {

/// One active lend, as `sockhook status` shows it. Read from the journals only: no libvirt.
struct LendStatus {
  std::string domain, uuid, socket, method, owner, source, target;
  std::string health;    ///< "ok"; "stale": the source path holds another inode now (the server
                         ///< restarted); "broken": the mount or the proxy is gone
  std::string why;       ///< for stale and broken
  pid_t proxy_pid = 0;   ///< the process QEMU connects to: a proxy, or a context's holder
  pid_t holder_pid = 0;  ///< a context lend's holder (behind a proxy, or the lend itself)
};

/// Every lend recorded in the journals, with its health. Throws Error if the state directory
/// cannot be trusted. With `owner`, only the sockets the journals record as that uid's
/// (owner-uid, never the name): their health alone is looked at, and a journal that cannot be
/// read is left out, since nothing says whose it is.
std::vector<LendStatus> lend_status(const Paths& paths, std::optional<uid_t> owner = std::nullopt);

/// What cleanup or refresh did: the UUIDs or sockets it handled, and the problems it met.
struct LendsDone {
  std::vector<std::string> done;     ///< undone (cleanup) or lent again (refresh) completely
  std::vector<std::string> nothing;  ///< cleanup: UUIDs that had no journal, so nothing to undo
  std::vector<std::string> problems;
  /// cleanup --forget: for each journal dropped with entries left, why ("<uuid>: not undone:
  /// ...") and what may remain on the host ("<uuid>: dropped from the journal, may remain: ...")
  std::vector<std::string> forgotten;
  /// cleanup --stale: UUIDs left alone because a hook of theirs holds the domain's lock now
  std::vector<std::string> busy;
  /// cleanup --stale: domains left alone because libvirt is starting them, one line each
  /// ("<uuid>: left alone: <name> is starting (<why>)")
  std::vector<std::string> starting;
};

/// cleanup: releases the journals of `domain` (a name or UUID as recorded), or with `stale`
/// every journal whose QEMU is not running, which libvirt is not starting (asked first, bounded:
/// `starting`) and no hook of which runs now (a domain being started or stopped is in use, not
/// stale: `busy`). Returns the UUIDs released completely, those
/// with nothing recorded, and the problems (a UUID with a problem is in neither list).
/// With `forget`, a journal that still holds entries after the release is dropped all the
/// same, so that it can always be ended: its UUID counts as released, and `forgotten` lists
/// what may remain. Throws Error if `domain` matches no journal.
LendsDone cleanup_lends(const ExecContext& ctx, const std::string& domain, bool stale,
                        bool forget = false);

/// What refresh does besides re-binding stale bind lends.
enum class DeadProxies {
  kRestart,  ///< start dead proxies and context holders again, as reconnect does (`sockhook
             ///< refresh`)
  kLeave,    ///< leave them: the caller's reconnect has just tried (the hook's reconnect)
};

/// refresh: lends the stale bind sockets of `domain` (name or UUID) again, and starts its dead
/// proxies and context holders again (they end with their owner's processes at logout, where
/// logind kills them),
/// those that `policy` still allows. Returns the sockets refreshed and the problems (a
/// refusal is one). Throws Error if `domain` matches no journal.
LendsDone refresh_lends(const ExecContext& ctx, const std::string& domain, const Policy& policy,
                        DeadProxies dead = DeadProxies::kRestart);

}  // namespace sockhook
