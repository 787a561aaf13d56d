#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "sys/fd.hpp"

namespace sockhook {

/// openat2(dirfd, path, flags, resolve) through syscall() (Debian 12's glibc has no wrapper).
/// Returns the new fd, or an invalid Fd with errno set.
Fd openat2_fd(int dirfd, const std::string& path, int flags, unsigned long long resolve);

/// A directory of a verified chain, with the name it has relative to the runtime directory
/// ("" for the runtime directory itself).
struct VerifiedDir {
  std::string relative;
  std::string path;  ///< absolute, for messages and for matching GrantAcl::path
  Fd fd;             ///< O_PATH
  struct stat st {};
};

/// A socket resolved once, safely, beneath its owner's runtime directory (S1, S2). Every later
/// action goes through `fd` or one of the directory fds, never through the path again.
struct VerifiedSource {
  std::string path;               ///< absolute, for messages only
  Fd fd;                          ///< O_PATH|O_NOFOLLOW of the socket inode
  struct stat st {};              ///< of `fd`, checked: socket, owned by the owner, one link
  std::vector<VerifiedDir> dirs;  ///< the runtime dir, then each subdirectory down to the parent
};

/// What to resolve.
struct SourceSpec {
  std::string base;      ///< the owner's runtime directory, or "/" for an admin plugin's path
  std::string relative;  ///< beneath `base`, no leading '/'
  uid_t owner;
  int wait_seconds = 0;  ///< wait this long (inotify) for a missing socket
  /// Count the wait from here (the hook's start) instead of from the call, so that the waits
  /// of a domain's sockets overlap: the hook waits as long as the largest of them, not their
  /// sum (issue 22, item 9).
  std::optional<std::chrono::steady_clock::time_point> waits_from;
};

/// Opens `spec.base` (no symlinks anywhere, must be a directory owned by the owner unless it
/// is "/"), then each directory of `spec.relative` and the socket beneath it with openat2
/// (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV). Checks with fstat that every
/// directory is owned by the owner and that the result is a socket owned by the owner with
/// exactly one link. Waits with inotify (bounded) while the socket or a directory on the way
/// is missing. Throws Error with a short reason ("not a socket", "is a symbolic link", ...).
VerifiedSource resolve_source(const SourceSpec& spec);

/// dev and ino of an inode: what the journal records and release compares.
struct InodeId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const InodeId&) const = default;
};

/// The identity of `st`.
inline InodeId inode_of(const struct stat& st) { return {st.st_dev, st.st_ino}; }

}  // namespace sockhook
