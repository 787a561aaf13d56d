#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/paths.hpp"
#include "journal/journal.hpp"
#include "sys/fd.hpp"
#include "sys/resolve.hpp"

namespace sockhook {

/// The journal of one domain while an executor changes the host: every side effect is
/// recorded (and the journal written to disk) before it happens (R3).
class Transaction {
 public:
  Transaction(const JournalStore& store, Journal& journal) : store_(store), journal_(journal) {}

  /// Appends `entry`, writes the journal, and returns the entry's index.
  std::size_t record(Effect entry);
  /// Replaces entry `index` (e.g. with the proxy's pid once known) and writes the journal.
  void update(std::size_t index, Effect entry);
  /// Writes the journal as it is.
  void save() { store_.save(journal_); }

  Journal& journal() { return journal_; }
  const JournalStore& store() const { return store_; }

 private:
  const JournalStore& store_;
  Journal& journal_;
};

/// What one socket's steps hand to each other while they run.
struct SocketRun {
  std::string socket;  ///< the socket's name, recorded with each entry
  std::string verb;    ///< "bind-mount", "grant access to", ... for error messages
  Transaction& tx;
  const ExecContext& ctx;
  const Fd& lend_dir;  ///< invalid for methods without one
  std::string lend_dir_path;
  uid_t qemu_uid = 0;
  gid_t qemu_gid = 0;
  std::string label;  ///< "<domain>/<socket>", for the proxy's process title

  SourceSpec spec;                       ///< set by VerifySource
  std::optional<VerifiedSource> source;  ///< set by VerifySource
  Fd target;                             ///< the placeholder made by CreateTarget (O_PATH)
  std::string mounted_target;            ///< set once the bind mount is in place

  /// The name of `path` in the lend directory, the only place a step creates anything (S4).
  /// Throws Error, "<what>: <path> is not in the lend directory <dir>", for any other path.
  std::string name_in_lend_dir(const std::string& path, const std::string& what) const;

  /// An effect `E` on `path` for this socket, to fill in and record.
  template <typename E>
  E entry(const std::string& path) const {
    E e;
    e.socket = socket;
    e.path = path;
    return e;
  }
};

/// What every undo is handed: `undo(const E&, const Undoing&)` in the lend/ file of effect E.
struct Undoing {
  const JournalStore& store;
  const std::string& uuid;  ///< the domain whose journal records the effect
  /// Writes the journal without the effect. A shared change calls it while it still holds the
  /// inode's lock (lend_acl.cpp); any other undo leaves it to its caller.
  std::function<void()> forget;
};

/// A lend's health as `sockhook status` shows it, built by the `check_health` of each of its
/// socket's effects in turn (lend/lends.hpp).
struct LendHealth {
  std::string health = "ok";      ///< "ok", "stale" or "broken"
  std::string why;                ///< for stale and broken
  pid_t proxy_pid = 0;            ///< the process QEMU connects to: a proxy, or a context's holder
  pid_t holder_pid = 0;           ///< a context's holder (behind a proxy, or the lend itself)
  bool final = false;             ///< decided: the later effects are not looked at
  std::vector<std::string> dead;  ///< the processes of a proxy or context lend that no longer run
};

/// The indices of the entries an undo takes back, newest first (the reverse of the order they
/// were made in, so that a mount goes before the placeholder under it and the directory last):
/// every entry, or with `socket`, only that socket's entries recorded at index `mark` or later.
std::vector<std::size_t> undo_order(const std::vector<Effect>& entries,
                                    const std::optional<std::string>& socket = std::nullopt,
                                    std::size_t mark = 0);

/// VerifySource: resolves the socket once (S1, S2), waiting if needed, into `run.source`.
void run_step(SocketRun& run, const VerifySource& step);

}  // namespace sockhook
