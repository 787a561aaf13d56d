#pragma once

#include <functional>
#include <string>

#include "journal/transaction.hpp"

namespace sockhook {

/// GrantAcl: adds u:UID:perms on the verified socket inode, or (directory) on a directory of
/// the verified chain, through /proc/self/fd. With only_if_denied, does nothing when the
/// inode's mode and ACL already give QEMU's user those rights, unless another domain's journal
/// records that grant: then this domain records it too, with the prior ACL that domain
/// recorded, so that the entry stays until the last of them is released. Records the exact
/// prior ACL first.
void run_step(SocketRun& run, const GrantAcl& step);

/// Undoes an AclGranted of the journal of `u.uuid`: only if the inode still matches (dev/ino),
/// still carries our entry, and no other journal in `u.store` records a grant for the same inode
/// and uid, removes exactly that entry and restores the mask, so that getfacl prints what it
/// printed before the first grant (S7). Once that is decided and done, calls `u.forget` (which
/// writes the journal without this entry) while still holding the inode's lock. Returns what it
/// could not do, or nullopt.
UndoProblem undo(const AclGranted& entry, const Undoing& u);

/// status of both lends that change the owner's inode itself (AclGranted here, GroupChanged in
/// lend_group): stale when the source path holds another socket now (the server restarted),
/// since the change stayed on the old inode.
void check_health(const InodeChange& entry, const Journal& j, const JournalSocket& s,
                  LendHealth& h);

}  // namespace sockhook
