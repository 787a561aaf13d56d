#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "journal/journal.hpp"
#include "journal/transaction.hpp"
#include "sys/fd.hpp"
#include "sys/resolve.hpp"

namespace sockhook {

// Changes that several domains may share on one inode (an ACL entry, a group change): the
// last domain released restores the inode (see lend_acl.cpp for the rule).

/// What reopen_recorded_inode found.
struct RecordedInode {
  Fd fd;  ///< the recorded inode, or invalid if it was not found (dev/ino differ)
  /// Not found, but it may live on under another name (nothing, a symlink or a FIFO holds the
  /// name: the owner may be renaming): the caller keeps such entries for a later try. False
  /// when it is surely gone (the runtime directory is gone, or another socket holds the name:
  /// the server restarted).
  bool unsure = false;
  /// Why the base could not be looked at (a file system its owner's process serves): then
  /// `unsure` too, and the entry is kept.
  std::string blocked;
};

/// Finds again the inode that an acl or group entry changed: through the mount target that
/// shows it, else resolved securely beneath the recorded base (as prepare did).
RecordedInode reopen_recorded_inode(const InodeChange& entry);

/// The journals of the other domains (not `own_uuid`). An unreadable journal is skipped: its
/// own release will quarantine it, and it cannot be trusted to restore anything.
std::vector<Journal> other_journals(const JournalStore& store, const std::string& own_uuid);

/// The effect `E` (AclGranted, GroupChanged) of another domain's journal that records a change
/// on `inode` for `id` (E::shared_id: QEMU's uid, or its gid), or nullopt. Call with the
/// InodeLock of `inode` held. See lend_acl.cpp for the shared-grant rule.
template <typename E>
std::optional<E> other_domains_grant(const JournalStore& store, const std::string& own_uuid,
                                     InodeId inode, unsigned id) {
  for (const auto& other : other_journals(store, own_uuid))
    for (const auto& e : other.entries)
      if (const auto* c = std::get_if<E>(&e); c && c->inode() == inode && c->shared_id() == id)
        return *c;
  return std::nullopt;
}

/// Undoes a change that domains may share (an acl entry, a group change): finds the inode again,
/// takes its lock and, unless another domain's journal still records the same change (then the
/// last one released restores: `shared` says so), calls `restore` on it (throwing Error on
/// failure). Then calls `forget` under the lock. A name that holds something else now keeps the
/// entry for a later try; a gone or replaced inode took the change with it. Returns a problem
/// prefixed by `what`, or "".
template <typename E>
UndoProblem undo_shared_change(const E& entry, const Undoing& u, const std::string& what,
                               const std::function<void(const Fd&)>& restore) {
  return undo_shared_change(
      entry, u, what,
      [&] {
        return other_domains_grant<E>(u.store, u.uuid, entry.inode(), entry.shared_id())
            .has_value();
      },
      restore);
}
UndoProblem undo_shared_change(const InodeChange& entry, const Undoing& u, const std::string& what,
                               const std::function<bool()>& shared,
                               const std::function<void(const Fd&)>& restore);

}  // namespace sockhook
