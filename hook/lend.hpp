#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "executor.hpp"
#include "journal.hpp"
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
};

/// Finds again the inode that an acl or group entry changed: through the mount target that
/// shows it, else resolved securely beneath the recorded base (as prepare did). Returns an
/// invalid Fd if that inode is not found (dev/ino differ). Then `*unsure` is false when it is
/// surely gone (the runtime directory is gone, or another socket holds the name: the server
/// restarted) and true when it may live on under another name (nothing, a symlink or a FIFO
/// holds the name: the owner may be renaming): the caller keeps such entries for a later try.
Fd reopen_recorded_inode(const JournalEntry& entry, bool* unsure);

/// The entry of another domain's journal (not `own_uuid`) that records a change of `kind` on
/// `inode` for `id` (QEMU's uid for kAcl, its gid for kGroup), or nullopt. Call with the
/// InodeLock of `inode` held. An unreadable journal is skipped: its own release will quarantine
/// it, and it cannot be trusted to restore anything. See lend_acl.cpp for the shared-grant rule.
std::optional<JournalEntry> other_domains_grant(const JournalStore& store,
                                                const std::string& own_uuid, EntryKind kind,
                                                InodeId inode, unsigned id);

/// Undoes a change that domains may share (an acl entry, a group change): finds the inode again,
/// takes its lock and, unless another domain's journal still records the same change (then the
/// last one released restores), calls `restore` on it (throwing Error on failure). Then calls
/// `forget` under the lock. A name that holds something else now keeps the entry for a later
/// try; a gone or replaced inode took the change with it. Returns a problem prefixed by `what`,
/// or "".
std::string undo_shared_change(const JournalEntry& entry, const JournalStore& store,
                               const std::string& uuid, unsigned id, const std::string& what,
                               const std::function<void()>& forget,
                               const std::function<void(const Fd&)>& restore);

/// The start time of a process (field 22 of /proc/PID/stat), or 0 if it does not exist.
unsigned long long process_starttime(pid_t pid);

/// The state letter of a process (field 3 of /proc/PID/stat: R, S, Z...), or 0.
char process_state(pid_t pid);

}  // namespace sockhook

namespace sockhook {

/// VerifySource: resolves the socket once (S1, S2), waiting if needed, into `run.source`.
void verify_source(SocketRun& run, const VerifySource& step);

/// Undoes a kFile entry: unlinks the name in the root-owned lend directory. Returns a problem
/// or "".
std::string undo_file(const JournalEntry& entry);

/// Undoes a kDir entry: removes the (then empty) lend directory. Returns a problem or "".
std::string undo_dir(const JournalEntry& entry);

}  // namespace sockhook
