#include "lend_acl.hpp"

#include "error.hpp"
#include "log.hpp"
#include "sys/acl.hpp"

namespace sockhook {

void grant_acl(SocketRun& run, const GrantAcl& step) {
  if (!run.source) throw Error("cannot add an ACL entry on " + step.path + ": not verified");
  const Fd* fd = &run.source->fd;
  const struct stat* st = &run.source->st;
  std::string relative = run.spec.relative;
  if (step.directory) {
    fd = nullptr;
    for (const auto& dir : run.source->dirs) {
      if (dir.path == step.path) {
        fd = &dir.fd;
        st = &dir.st;
        relative = dir.relative;
      }
    }
    if (!fd) throw Error("cannot add an ACL entry on " + step.path + ": not on the verified path");
  }
  auto what =
      "cannot add ACL entry u:" + std::to_string(step.uid) + ":" + step.perms + " on " + step.path;
  try {
    // Every call below goes through /proc/self/fd/N: the verified inode, never the path.
    auto proc = fd->proc_path();
    Perms perms = parse_perms(step.perms);
    if (step.only_if_denied &&
        acl_allows(proc, *st, step.uid, groups_of_uid(step.uid, run.qemu_gid), perms))
      return;
    JournalEntry e;
    e.kind = EntryKind::kAcl;
    e.socket = run.socket;
    e.path = step.path;
    e.base = run.spec.base;
    e.relative = relative;
    e.owner = run.spec.owner;
    if (!step.directory) e.via_target = run.mounted_target;
    e.inode = inode_of(*st);
    e.uid = step.uid;
    e.perms = perms;
    e.prior = read_acl_state(proc, step.uid);
    run.tx.record(e);
    acl_grant_user(proc, step.uid, perms);
  } catch (const Error& err) {
    throw Error(what + ": " + err.what(), err.err());
  }
}

std::string undo_acl(const JournalEntry& e) {
  bool unsure = false;
  Fd fd = reopen_recorded_inode(e, &unsure);
  // Someone swapped the name for something else: keep the entry, a later release tries again.
  if (!fd && unsure)
    return "cannot find " + e.path + " again (the name holds something else now); will retry";
  // The inode is gone or replaced (the server restarted): our entry went with it.
  if (!fd) return "";
  try {
    auto proc = fd.proc_path();
    auto now = read_acl_state(proc, e.uid);
    // Not ours any more (never applied, already undone, or changed by the owner): leave it.
    if (!now.entry || (*now.entry & e.perms) != e.perms) return "";
    acl_revoke_user(proc, e.uid, e.prior);
    return "";
  } catch (const Error& err) {
    return "cannot remove ACL entry u:" + std::to_string(e.uid) + " from " + e.path + ": " +
           err.what();
  }
}

}  // namespace sockhook
