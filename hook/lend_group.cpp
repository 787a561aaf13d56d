#include "lend_group.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "error.hpp"
#include "sys/acl.hpp"

namespace sockhook {

void change_group(SocketRun& run, const ChangeGroup& step) {
  auto what = "cannot change the group of " + step.path + " to gid " + std::to_string(step.gid);
  if (!run.source) throw Error(what + ": not verified");
  const auto& fd = run.source->fd;
  const auto& st = run.source->st;
  auto proc = fd.proc_path();
  try {
    auto prior = read_acl_state(proc, run.qemu_uid);
    if (prior.xattr) throw Error("it has an extended ACL (use method acl)");
    JournalEntry e;
    e.kind = EntryKind::kGroup;
    e.socket = run.socket;
    e.path = step.path;
    e.base = run.spec.base;
    e.relative = run.spec.relative;
    e.owner = run.spec.owner;
    e.inode = inode_of(st);
    e.gid = step.gid;
    e.prior_gid = st.st_gid;
    e.prior = prior;
    run.tx.record(e);
    // fchownat(AT_EMPTY_PATH) acts on the O_PATH fd's inode; the owner stays (-1).
    if (::fchownat(fd.get(), "", static_cast<uid_t>(-1), step.gid, AT_EMPTY_PATH) != 0)
      throw_errno("fchownat");
    // fchmod fails on O_PATH fds; chmod through the magic link reaches the same inode.
    if (::chmod(proc.c_str(), (prior.mode | 060) & 07777) != 0) throw_errno("chmod");
  } catch (const Error& err) {
    throw Error(what + ": " + err.what(), err.err());
  }
}

std::string undo_group(const JournalEntry& e) {
  bool unsure = false;
  Fd fd = reopen_recorded_inode(e, &unsure);
  // Someone swapped the name for something else: keep the entry, a later release tries again.
  if (!fd && unsure)
    return "cannot find " + e.path + " again (the name holds something else now); will retry";
  if (!fd) return "";
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || st.st_gid != e.gid) return "";
  auto what = "cannot restore the group and mode of " + e.path;
  if (::fchownat(fd.get(), "", static_cast<uid_t>(-1), e.prior_gid, AT_EMPTY_PATH) != 0)
    return what + ": " + std::strerror(errno);
  if (::chmod(fd.proc_path().c_str(), e.prior.mode) != 0) return what + ": " + std::strerror(errno);
  return "";
}

}  // namespace sockhook
