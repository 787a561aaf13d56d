#pragma once

#include <string>

#include "sys/fd.hpp"
#include "sys/resolve.hpp"

namespace sockhook {

/// An exclusive lock on one domain: /run/sockhook/state/<uuid>.lock (flock). Hooks of the
/// same domain take turns; different domains never wait for each other (R4).
class DomainLock {
 public:
  /// Takes the lock, waiting at most `timeout_seconds` (R6). Throws Error on timeout.
  DomainLock(const Fd& state_dir, const std::string& uuid, int timeout_seconds = 30);
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
