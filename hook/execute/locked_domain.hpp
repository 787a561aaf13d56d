#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/paths.hpp"
#include "journal/journal.hpp"
#include "journal/lock.hpp"

namespace sockhook {

/// One domain while the executor works on it: its journal store open, its lock held (R4), and
/// its journal loaded, or moved aside with a message when nobody can read it. Every stage of
/// prepare, start, release, reconnect and refresh runs on one; the lock goes with it.
struct LockedDomain {
  /// How long a hook waits for the domain's lock (R6).
  static constexpr int kLockWaitSeconds = 30;

  ExecContext real;  ///< the caller's context, with this executable's real path for proxies
  JournalStore store;
  std::string uuid;
  DomainLock lock;
  std::optional<Journal> journal;         ///< what was lent, nullopt if nothing (or unreadable)
  std::optional<std::string> unreadable;  ///< why the journal was moved aside, if it was
  /// Set by prepare: whether it lent or rolled back, a domain left with no journal keeps no lock
  /// file either (R2's "no file remains").
  bool drop_lock_file_when_empty = false;

  /// Opens (`create`: creates) the state directory, takes the lock, loads the journal. Throws
  /// Error when the directory is not root's or the lock cannot be had.
  LockedDomain(const ExecContext& ctx, JournalStore open_store, const std::string& uuid,
               DomainLock::Waiting waiting = DomainLock::Waiting::kGiveUp,
               int timeout_seconds = kLockWaitSeconds);
  LockedDomain(const LockedDomain&) = delete;
  LockedDomain& operator=(const LockedDomain&) = delete;
  ~LockedDomain();

  /// The domain locked in the existing journal store, or nullptr when there is no store (then
  /// nothing was ever lent). Throws as the constructor does.
  static std::unique_ptr<LockedDomain> existing(
      const ExecContext& ctx, const std::string& uuid,
      DomainLock::Waiting waiting = DomainLock::Waiting::kGiveUp,
      int timeout_seconds = kLockWaitSeconds);

  /// The journal of `uuid` (nullopt if there is none), or why it could not be read.
  struct Loaded {
    std::optional<Journal> journal;
    std::optional<std::string> unreadable;  ///< the problem, when the journal was moved aside
  };
  /// Reads the journal again from the store, moving an unreadable one aside. Never throws.
  Loaded load_or_quarantine() const;

  /// Deletes the journal and the lock file (the lock itself goes with this object).
  void drop();
};

}  // namespace sockhook
