#pragma once

#include <string>

#include "lend.hpp"

namespace sockhook {

/// GrantAcl: adds u:UID:perms on the verified socket inode, or (directory) on a directory of
/// the verified chain, through /proc/self/fd. With only_if_denied, does nothing when the
/// inode's mode and ACL already give QEMU's user those rights. Records the exact prior ACL
/// first.
void grant_acl(SocketRun& run, const GrantAcl& step);

/// Undoes a kAcl entry: only if the inode still matches (dev/ino) and still carries our
/// entry, removes exactly that entry and restores the mask, so that getfacl prints what it
/// printed before (S7). Returns a problem or "".
std::string undo_acl(const JournalEntry& entry);

}  // namespace sockhook
