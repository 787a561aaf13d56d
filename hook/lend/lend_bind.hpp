#pragma once

#include <string>

#include "journal/transaction.hpp"

namespace sockhook {

/// CreateTarget: an empty placeholder in the lend directory (O_CREAT|O_EXCL|O_NOFOLLOW),
/// recorded before it is made.
void create_target(SocketRun& run, const CreateTarget& step);

/// BindMount: mounts the verified source inode onto the placeholder (open_tree + move_mount)
/// and checks that the target now shows exactly that inode.
void bind_mount(SocketRun& run, const BindMount& step);

/// Undoes a kMount entry: detaches the mount only while the target still shows the recorded
/// inode (S7). Returns what it could not do, or nullopt.
UndoProblem undo_mount(const JournalEntry& entry);

}  // namespace sockhook
