#pragma once

#include <sys/types.h>

#include <cstddef>
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
  std::size_t record(JournalEntry entry);
  /// Replaces entry `index` (e.g. with the proxy's pid once known) and writes the journal.
  void update(std::size_t index, JournalEntry entry);
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

  /// A journal entry of `kind` on `path` for this socket, to fill in and record.
  JournalEntry entry(EntryKind kind, const std::string& path) const {
    JournalEntry e;
    e.kind = kind;
    e.socket = socket;
    e.path = path;
    return e;
  }
};

/// The indices of the entries an undo takes back, newest first (the reverse of the order they
/// were made in, so that a mount goes before the placeholder under it and the directory last):
/// every entry, or with `socket`, only that socket's entries recorded at index `mark` or later.
std::vector<std::size_t> undo_order(const std::vector<JournalEntry>& entries,
                                    const std::optional<std::string>& socket = std::nullopt,
                                    std::size_t mark = 0);

/// VerifySource: resolves the socket once (S1, S2), waiting if needed, into `run.source`.
void verify_source(SocketRun& run, const VerifySource& step);

}  // namespace sockhook
