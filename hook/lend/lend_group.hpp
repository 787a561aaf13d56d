#pragma once

#include <functional>
#include <string>

#include "journal/transaction.hpp"

namespace sockhook {

/// ChangeGroup: sets the verified socket's group to QEMU's (keeping the owner) and adds g+rw,
/// through the fd. Records the exact prior group and mode first. Refuses a socket that has an
/// extended ACL: there chmod would change the mask, not the group's rights. Shared between
/// domains like an ACL grant (see lend_acl.cpp): a second domain copies the first one's prior.
void run_step(SocketRun& run, const ChangeGroup& step);

/// Undoes a GroupChanged of the journal of `u.uuid`: unless another domain's journal still
/// records the same change on that inode, restores the group and mode exactly, only if the inode
/// still matches and still has the group we gave it; then calls `u.forget` under the inode's
/// lock. Returns what it could not do, or nullopt.
UndoProblem undo(const GroupChanged& entry, const Undoing& u);

// status: check_health(const InodeChange&, ...) in lend_acl.hpp, as for an ACL grant.

}  // namespace sockhook
