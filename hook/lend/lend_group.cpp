#include "lend/lend_group.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.hpp"
#include "journal/lock.hpp"
#include "journal/shared_change.hpp"
#include "lend/lend_acl.hpp"
#include "sys/acl.hpp"

namespace sockhook {

void run_step(SocketRun& run, const ChangeGroup& step) {
  auto what = "cannot change the group of " + step.path + " to gid " + std::to_string(step.gid);
  if (!run.source) throw Error(what + ": not verified");
  const auto& fd = run.source->fd;
  const auto& st = run.source->st;
  auto proc = fd.proc_path();
  in_context(what, [&] {
    auto inode = inode_of(st);
    // Another domain may have changed it already: decide, record and change while it waits.
    InodeLock lock(run.tx.store().dir(), inode);
    auto shared =
        other_domains_grant<GroupChanged>(run.tx.store(), run.tx.journal().uuid, inode, step.gid);
    auto prior = read_acl_state(proc, run.qemu_uid);
    if (prior.xattr) throw Error("it has an extended ACL (use method acl)");
    auto e = run.entry<GroupChanged>(step.path);
    e.base = run.spec.base;
    e.relative = run.spec.relative;
    e.owner = run.spec.owner;
    e.set_inode(inode);
    e.gid = step.gid;
    // Shared: the group and mode from before the first domain's change.
    e.prior_gid = shared ? shared->prior_gid : st.st_gid;
    e.prior_mode = shared ? shared->prior_mode : prior.mode;
    run.tx.record(e);
    // fchownat(AT_EMPTY_PATH) acts on the O_PATH fd's inode; the owner stays (-1).
    if (::fchownat(fd.get(), "", static_cast<uid_t>(-1), step.gid, AT_EMPTY_PATH) != 0)
      throw_errno("fchownat");
    // fchmod fails on O_PATH fds; chmod through the magic link reaches the same inode.
    if (::chmod(proc.c_str(), (st.st_mode | 060) & 07777) != 0) throw_errno("chmod");
  });
}

UndoProblem undo(const GroupChanged& e, const Undoing& u) {
  return undo_shared_change(
      e, u, "cannot restore the group and mode of " + e.path, [&](const Fd& fd) {
        struct stat st {};
        // Not ours any more (the owner changed the group back): leave it.
        if (::fstat(fd.get(), &st) != 0 || st.st_gid != e.gid) return;
        // Safe: on the re-verified inode's fd (dev/ino match, under its lock), not a path.
        if (::fchownat(fd.get(), "", static_cast<uid_t>(-1), e.prior_gid, AT_EMPTY_PATH) != 0)
          throw_errno("fchownat");
        if (::chmod(fd.proc_path().c_str(), e.prior_mode) != 0) throw_errno("chmod");
      });
}

}  // namespace sockhook
