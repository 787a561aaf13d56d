#pragma once

#include <string>

#include "journal/transaction.hpp"

namespace sockhook {

/// CreateTarget: an empty placeholder in the lend directory (O_CREAT|O_EXCL|O_NOFOLLOW),
/// recorded before it is made.
void run_step(SocketRun& run, const CreateTarget& step);

/// BindMount: mounts the verified source inode onto the placeholder (open_tree + move_mount)
/// and checks that the target now shows exactly that inode.
void run_step(SocketRun& run, const BindMount& step);

/// Undoes a Mounted: detaches the mount only while the target still shows the recorded inode
/// (S7). Returns what it could not do, or nullopt.
UndoProblem undo(const Mounted& entry, const Undoing& u);

/// status: broken when the target no longer shows the recorded inode; stale when the source
/// path holds another socket now (the server restarted).
void check_health(const Mounted& entry, const Journal& j, const JournalSocket& s, LendHealth& h);

}  // namespace sockhook
