#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "sys/fd.hpp"

namespace sockhook {

/// Opens the root-owned directory `path` (O_RDONLY|O_DIRECTORY), creating it with `mode` if
/// it is missing. No symlink is followed on the way. Refuses a directory that is not owned by
/// root or that group or others may write (and, for a 0700 `mode`, one that others may
/// enter). Throws Error.
Fd ensure_root_dir(const std::string& path, mode_t mode);

/// Creates the domain's lend directory `name` in `lend_root`: owned by root, mode 0700 plus
/// the ACL entry u:QEMU:--x, so that only QEMU's user can traverse it and nobody but root can
/// write it (S4). An empty root-owned directory left by an interrupted release is adopted;
/// anything else in the way is refused. Sets `*created` if it made the directory. Throws Error.
Fd make_lend_dir(const Fd& lend_root, const std::string& name, uid_t qemu_uid, bool* created);

/// Opens an existing lend directory (for release), checking it is a root-owned directory.
/// Returns an invalid Fd if it is missing or not ours.
Fd open_lend_dir(const std::string& path);

/// Creates an empty regular file `name` in `dir` (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600) and
/// returns an O_PATH fd of it: a mount point that nobody could have planted. Throws Error.
Fd create_placeholder(const Fd& dir, const std::string& name);

/// The last component of a path.
std::string base_name(const std::string& path);
/// Everything before the last '/'.
std::string dir_name(const std::string& path);

}  // namespace sockhook
