#pragma once

#include <string>

#include "sys/fd.hpp"
#include "sys/resolve.hpp"

namespace sockhook {

/// An exclusive lock on one domain: /run/sockhook/state/<uuid>.lock (flock). Hooks of the
/// same domain take turns; different domains never wait for each other (R4). The holder
/// writes its pid and start time into the file.
///
/// Why a release always makes progress. The lock is an flock, so the kernel drops it when its
/// holder exits, however it exits; and only the hook process itself holds it: every child is
/// forked by fork_child (sys/creds), which closes every descriptor the child was not handed
/// before anything else and makes it die with the hook, so a child the owner stalls, even one
/// that cannot die, holds no lock. The holder itself never waits without
/// a bound (every wait on the owner is capped: socket wait, companion read, proxy spawn, inode
/// locks), and root is never made to wait by the owner's FUSE mounts (FUSE refuses other users
/// without allow_other, before asking the server; with it, the runtime directory is not admitted:
/// open_owner_dir). But those bounds add up over up to 32
/// sockets, so a release does not rely on them alone: with Waiting::kTakeOver, when the lock is
/// still held after the timeout, it kills the holder (identified by pid, start time and
/// executable, through a pidfd) and takes the lock when the kernel releases it. That is safe
/// for the host: the journal is written before every side effect (R3), so a holder killed at
/// any point leaves a state that this release undoes completely; and a prepare or refresh of a
/// domain that is being released has no future anyway.
class DomainLock {
 public:
  enum class Waiting {
    kGiveUp,    ///< throw Error after the timeout
    kTakeOver,  ///< after the timeout, kill the holder and take the lock (at most 5 s more)
  };
  /// How long a hook waits for a domain's lock (R6).
  static constexpr int kWaitSeconds = 30;

  /// Takes the lock, waiting at most `timeout_seconds` (R6), then as `waiting` says. Throws
  /// Error on timeout.
  DomainLock(const Fd& state_dir, const std::string& uuid, int timeout_seconds = kWaitSeconds,
             Waiting waiting = Waiting::kGiveUp);
  DomainLock(DomainLock&&) = default;
  DomainLock& operator=(DomainLock&&) = default;

  /// Removes the lock file while still holding the lock (when the domain has nothing left);
  /// a waiter that then gets the old inode notices and takes the new file instead.
  void remove_file();

 private:
  const Fd* state_dir_;
  std::string name_;
  Fd fd_;
};

/// An exclusive lock on one inode's ACL: /run/sockhook/state/inode-<dev>-<ino>.lock (flock).
/// Domains that lend the same socket (or traverse the same directory) share one ACL entry;
/// they take turns to decide who adds it and who removes it (see lend_acl.cpp). It is held
/// for milliseconds, and other inodes never wait for it. The file goes when the lock does.
class InodeLock {
 public:
  /// Takes the lock, waiting at most `timeout_seconds` (R6). Throws Error on timeout.
  InodeLock(const Fd& state_dir, InodeId inode, int timeout_seconds = 10);
  InodeLock(const InodeLock&) = delete;
  InodeLock& operator=(const InodeLock&) = delete;
  /// Removes the lock file while still holding the lock, then unlocks.
  ~InodeLock();

 private:
  const Fd& state_dir_;
  std::string name_;
  Fd fd_;
};

}  // namespace sockhook
