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

/// How long the child that opens an owner's directory may take (R6). Opening it never waits for
/// anything on a sane host; only a file system that its owner's process serves could hold it.
inline constexpr int kOwnerDirTimeoutMs = 5000;

/// Opens `path`, a directory its owner controls (the runtime directory), O_PATH with no symlink
/// on the way, in a forked child that root's descriptors never reach, and refuses it unless
/// the file system it is the root of or lies on is one the kernel serves itself: a FUSE file
/// system (its owner's process answers every request, or never does) is refused by its type,
/// read from /proc/self/mountinfo, never from the file system. The child has `timeout_ms`;
/// one that does not answer is killed, and abandoned if it cannot die (a request a FUSE server
/// has read and never answers holds it in uninterruptible sleep until the server goes). Once
/// admitted, everything beneath the fd is resolved with RESOLVE_NO_XDEV, so no later access
/// leaves that file system. Returns an invalid Fd with errno ENOENT if `path` does not exist;
/// throws Error naming the problem otherwise. Never waits longer than timeout_ms + 1 s.
Fd open_owner_dir(const std::string& path, int timeout_ms = kOwnerDirTimeoutMs);

/// The directory a plugin's socket is resolved beneath: "/" for an administrator's plugin
/// (root's; opened with no symlink on the way), any other through open_owner_dir, so that no
/// look at an owner's socket, in planning, lending or release, can be held by a FUSE there.
/// Same results as open_owner_dir.
Fd open_socket_base(const std::string& base);

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
