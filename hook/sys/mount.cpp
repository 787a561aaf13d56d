#include "sys/mount.hpp"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/error.hpp"

namespace sockhook {
namespace {

int open_tree_raw(int dirfd, const char* path, unsigned flags) {
  return static_cast<int>(::syscall(SYS_open_tree, dirfd, path, flags));
}

int move_mount_raw(int from_dirfd, const char* from, int to_dirfd, const char* to, unsigned flags) {
  return static_cast<int>(::syscall(SYS_move_mount, from_dirfd, from, to_dirfd, to, flags));
}

}  // namespace

void bind_mount_fd(const Fd& source, const Fd& target) {
  // A detached clone of exactly the inode the fd holds: whatever the path names now is
  // irrelevant, which is what makes a swapped symlink harmless (S1).
  Fd tree(open_tree_raw(source.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
  if (tree) {
    // Safe: both ends are fds (the verified source's clone, the placeholder we created).
    int rc = move_mount_raw(tree.get(), "", target.get(), "",
                            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
    int err = errno;
    // Close the tree at once: a lingering reference makes a later umount fail with EBUSY.
    tree.reset();
    if (rc != 0) throw_errno("move_mount", err);
    return;
  }
  if (errno != ENOSYS) throw_errno("open_tree");
  // Older kernels: mount(2) through the magic links, which name the fds' inodes, not paths.
  if (::mount(source.proc_path().c_str(), target.proc_path().c_str(), nullptr, MS_BIND, nullptr) !=
      0)
    throw_errno("mount");
}

int unmount_path(const std::string& path) {
  // Safe: UMOUNT_NOFOLLOW; callers pass a target in the root-only lend directory.
  return ::umount2(path.c_str(), UMOUNT_NOFOLLOW | MNT_DETACH) == 0 ? 0 : errno;
}

bool have_open_tree() {
  Fd tree(open_tree_raw(AT_FDCWD, "/", OPEN_TREE_CLOEXEC));
  return tree.valid() || errno != ENOSYS;
}

}  // namespace sockhook
