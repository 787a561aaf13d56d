#pragma once

#include <string>

#include "lend.hpp"

namespace sockhook {

/// ChangeGroup: sets the verified socket's group to QEMU's (keeping the owner) and adds g+rw,
/// through the fd. Records the exact prior group and mode first. Refuses a socket that has an
/// extended ACL: there chmod would change the mask, not the group's rights.
void change_group(SocketRun& run, const ChangeGroup& step);

/// Undoes a kGroup entry: restores the group and mode exactly, only if the inode still matches
/// and still has the group we gave it. Returns a problem or "".
std::string undo_group(const JournalEntry& entry);

}  // namespace sockhook
