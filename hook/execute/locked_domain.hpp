#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/paths.hpp"
#include "journal/journal.hpp"
#include "journal/lock.hpp"

namespace sockhook {

/// One domain while the executor works on it: its journal store open, its lock held (R4), and
/// its journal loaded, or why nobody can read it. Every stage of prepare, start, release,
/// reconnect and refresh runs on one; the lock goes with it, and so does the lock file when no
/// journal is left (R2's "no file remains").
struct LockedDomain {
  ExecContext real;  ///< the caller's context, with this executable's real path for proxies
  JournalStore store;
  std::string uuid;
  DomainLock lock;
  std::optional<Journal> journal;         ///< what was lent, nullopt if nothing (or unreadable)
  std::optional<std::string> unreadable;  ///< why the journal cannot be read, if it cannot

  /// Opens (`create`: creates) the state directory, takes the lock, loads the journal. Throws
  /// Error when the directory is not root's or the lock cannot be had.
  LockedDomain(const ExecContext& ctx, JournalStore open_store, const std::string& uuid,
               DomainLock::Waiting waiting = DomainLock::Waiting::kGiveUp,
               int timeout_seconds = DomainLock::kWaitSeconds);
  LockedDomain(const LockedDomain&) = delete;
  LockedDomain& operator=(const LockedDomain&) = delete;
  ~LockedDomain();

  /// The domain locked in the existing journal store, or nullptr when there is no store (then
  /// nothing was ever lent). Throws as the constructor does.
  static std::unique_ptr<LockedDomain> existing(
      const ExecContext& ctx, const std::string& uuid,
      DomainLock::Waiting waiting = DomainLock::Waiting::kGiveUp,
      int timeout_seconds = DomainLock::kWaitSeconds);

  /// Where the journal is given up (undo_journal, drop): an unreadable one cannot guide an
  /// undo, so it is moved aside for a person to look at, under a name no later run mistakes
  /// for a journal, and `unreadable` says where. Nothing else does it: a run that only looks
  /// (start, reconnect, cleanup --stale of a running domain) leaves it where it is.
  void quarantine();

  /// Deletes the journal (an unreadable one is moved aside first) and the lock file (the lock
  /// itself goes with this object).
  void drop();

 private:
  bool moved_aside_ = false;
};

}  // namespace sockhook
