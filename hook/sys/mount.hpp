#pragma once

#include <string>

#include "sys/fd.hpp"

namespace sockhook {

/// Bind-mounts exactly the inode of `source` onto the inode of `target` (both O_PATH fds):
/// open_tree(OPEN_TREE_CLONE) + move_mount, or mount(MS_BIND) through /proc/self/fd where the
/// kernel lacks them. No path is resolved. Throws Error.
void bind_mount_fd(const Fd& source, const Fd& target);

/// Detaches the mount on `path` without following a final symlink (UMOUNT_NOFOLLOW |
/// MNT_DETACH). Returns 0 or an errno value.
int unmount_path(const std::string& path);

/// True if the kernel has open_tree/move_mount (for doctor and tests).
bool have_open_tree();

}  // namespace sockhook
