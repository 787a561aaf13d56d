#include "lend/lend_bind.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>

#include <cstring>

#include "base/error.hpp"
#include "lend/lend_dir.hpp"
#include "sys/mount.hpp"
#include "sys/root_dir.hpp"

namespace sockhook {

void run_step(SocketRun& run, const CreateTarget& step) {
  auto name = run.name_in_lend_dir(step.path, "cannot create the target");
  auto e = run.entry<FileMade>(step.path);
  run.tx.record(e);
  auto made = attempt([&] { return create_placeholder(run.lend_dir, name); });
  if (made) {
    run.target = std::move(*made.value);
    return;
  }
  // create_placeholder names only the file; say the full path once, not twice.
  if (made.error->err() != 0) throw_errno("cannot create " + step.path, made.error->err());
  throw made.error->with_context("cannot create " + step.path);
}

void run_step(SocketRun& run, const BindMount& step) {
  if (!run.source || !run.target)
    throw Error("cannot bind-mount " + step.source + ": not verified");
  auto e = run.entry<Mounted>(step.target);
  auto inode = inode_of(run.source->st);
  e.set_inode(inode);
  run.tx.record(e);
  // Safe: both ends are fds. The source is the inode verified by resolve_source; the target is
  // the placeholder we created with O_EXCL in a directory only root can write.
  in_context("cannot bind-mount " + step.source + " onto " + step.target,
             [&] { bind_mount_fd(run.source->fd, run.target); });
  struct stat st {};
  if (::fstatat(run.lend_dir.get(), base_name(step.target).c_str(), &st, AT_SYMLINK_NOFOLLOW) !=
          0 ||
      inode_of(st) != inode)
    throw Error("cannot bind-mount " + step.source + " onto " + step.target +
                ": the target does not show the source afterwards");
  run.mounted_target = step.target;
}

UndoProblem undo(const Mounted& e, const Undoing&) {
  // The target lies in the root-owned lend directory, so its path is safe to use again; the
  // inode check makes sure we detach our mount and nothing else.
  for (int i = 0; i < 8; ++i) {
    Fd fd(openat2_fd(AT_FDCWD, e.path, O_PATH | O_NOFOLLOW | O_CLOEXEC, RESOLVE_NO_SYMLINKS));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || inode_of(st) != e.inode()) return std::nullopt;
    fd.reset();
    if (int err = unmount_path(e.path); err != 0)
      return "cannot unmount " + e.path + ": " + std::strerror(err);
  }
  return "cannot unmount " + e.path + ": still mounted after 8 attempts";
}

void check_health(const Mounted& e, const Journal& j, const JournalSocket& s, LendHealth& h) {
  struct stat st {};
  if (::fstatat(AT_FDCWD, e.path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      inode_of(st) != e.inode()) {
    h.health = "broken";
    h.why = "the mount on " + e.path + " is gone";
    h.final = true;
    return;
  }
  if (source_inode_now(s) != e.inode()) {
    h.health = "stale";
    h.why = s.source + " is another socket now (hint: sockhook refresh " + j.domain + ")";
  }
}

}  // namespace sockhook
