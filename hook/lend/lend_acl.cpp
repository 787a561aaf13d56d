#include "lend/lend_acl.hpp"

#include <optional>

#include "base/error.hpp"
#include "base/log.hpp"
#include "journal/lock.hpp"
#include "journal/shared_change.hpp"
#include "lend/lend_dir.hpp"
#include "sys/acl.hpp"
#include "sys/users.hpp"

// Shared grants. Two domains may lend the same socket (two VMs on one PipeWire), and acl lends
// may traverse the same directories. They then need the same u:QEMU entry on one inode, and the
// entry must stay until the last of them is released, after which getfacl must print what it
// printed before the first grant (S7). The rule:
//
//   - Each domain that needs the entry records a kAcl entry in its own journal, even when the
//     entry is already there because another domain added it. It then copies the prior state
//     from that domain's entry, so that whoever is released last restores the state from before
//     the first grant.
//   - At release, a domain removes the ACL entry only if no other journal records a grant for
//     the same dev/ino and uid; else it just forgets its own record.
//   - Both decisions look at the other journals and then change this domain's journal (and the
//     ACL) while holding an flock on the inode (InodeLock), so that no two domains decide at
//     once on one inode. At release the journal is written without the entry before the lock is
//     let go: otherwise two domains released at once could each see the other's (not yet
//     rewritten) journal, and both leave the entry behind.
//
// Crash safety (R3) still comes from writing the journal before the side effect: a recorded
// grant that was never applied, or already revoked, is copied as the correct prior by others,
// and undo_acl leaves an ACL without our entry alone. A stale journal (a domain that crashed and
// was not cleaned up yet) keeps the entry until its `release` or `cleanup` runs, which is what
// its own lend would do anyway.

namespace sockhook {

void run_step(SocketRun& run, const GrantAcl& step) {
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
  in_context(what, [&] {
    // Every call below goes through /proc/self/fd/N: the verified inode, never the path.
    auto proc = fd->proc_path();
    Perms perms = parse_perms(step.perms);
    auto inode = inode_of(*st);
    // Other domains may share this entry: decide, record and grant while they wait.
    InodeLock lock(run.tx.store().dir(), inode);
    std::optional<AclState> shared;
    if (auto other =
            other_domains_grant<AclGranted>(run.tx.store(), run.tx.journal().uuid, inode, step.uid))
      shared = other->prior();
    bool allowed = step.only_if_denied &&
                   acl_allows(proc, *st, step.uid, groups_of_uid(step.uid, run.qemu_gid), perms);
    // Access by the inode's own mode and ACL: nothing to add, nothing to undo.
    if (allowed && !shared) return;
    auto e = run.entry<AclGranted>(step.path);
    e.base = run.spec.base;
    e.relative = relative;
    e.owner = run.spec.owner;
    if (!step.directory) e.via_target = run.mounted_target;
    e.set_inode(inode);
    e.uid = step.uid;
    e.perms = perms;
    // Shared: the state before the first domain's grant, not the ACL that grant made.
    e.set_prior(shared ? *shared : read_acl_state(proc, step.uid));
    run.tx.record(e);
    // Shared and allowed: the other domain's entry is in place (the usual case). Otherwise (it
    // crashed before granting, or the owner took the entry away) add it ourselves.
    if (!allowed) acl_grant_user(proc, step.uid, perms);
  });
}

UndoProblem undo(const AclGranted& e, const Undoing& u) {
  return undo_shared_change(
      e, u, "cannot remove ACL entry u:" + std::to_string(e.uid) + " from " + e.path,
      [&](const Fd& fd) {
        auto proc = fd.proc_path();
        auto now = read_acl_state(proc, e.uid);
        // Not ours any more (never applied, already undone, or changed by the owner): leave it.
        if (now.entry && (*now.entry & e.perms) == e.perms) acl_revoke_user(proc, e.uid, e.prior());
      });
}

void check_health(const InodeChange& e, const Journal&, const JournalSocket& s, LendHealth& h) {
  // A bind lend's mount says it (lend_bind.cpp); acl and group lends act on the source itself.
  if (e.path != s.source || s.method == Method::kBind) return;
  if (source_inode_now(s) != e.inode()) {
    h.health = "stale";
    h.why = s.source + " is another socket now";
  }
}

}  // namespace sockhook
