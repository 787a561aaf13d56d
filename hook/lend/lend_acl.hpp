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
void grant_acl(SocketRun& run, const GrantAcl& step);

/// Undoes a kAcl entry of the journal of `uuid`: only if the inode still matches (dev/ino),
/// still carries our entry, and no other journal in `store` records a grant for the same inode
/// and uid, removes exactly that entry and restores the mask, so that getfacl prints what it
/// printed before the first grant (S7). Once that is decided and done, calls `forget` (which
/// writes the journal without this entry) while still holding the inode's lock. Returns a
/// problem or "".
UndoProblem undo_acl(const JournalEntry& entry, const JournalStore& store, const std::string& uuid,
                     const std::function<void()>& forget);

}  // namespace sockhook
