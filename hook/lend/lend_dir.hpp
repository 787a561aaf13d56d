#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>

#include "journal/transaction.hpp"
#include "sys/fd.hpp"

namespace sockhook {

/// Creates the domain's lend directory `name` in `lend_root`: owned by root, mode 0700 plus
/// the ACL entry u:QEMU:--x, so that only QEMU's user can traverse it and nobody but root can
/// write it (S4). An empty root-owned directory left by an interrupted release is adopted;
/// anything else in the way is refused. Throws Error whose message is the reason alone (the
/// caller names the directory).
Fd make_lend_dir(const Fd& lend_root, const std::string& name, uid_t qemu_uid);

/// Opens an existing lend directory (for release), checking it is a root-owned directory.
/// Returns an invalid Fd if it is missing or not ours.
Fd open_lend_dir(const std::string& path);

/// Creates an empty regular file `name` in `dir` (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600) and
/// returns an O_PATH fd of it: a mount point that nobody could have planted. Throws Error.
Fd create_placeholder(const Fd& dir, const std::string& name);

/// Removes `path` from its directory, a root-owned lend directory (or the lend root): `flags`
/// 0 for a file, AT_REMOVEDIR for an (empty) directory. Returns what it could not do, or nullopt.
UndoProblem remove_from_lend_dir(const std::string& path, int flags);

/// Undoes a FileMade: unlinks the name in the root-owned lend directory.
UndoProblem undo(const FileMade& entry, const Undoing& u);

/// Undoes a DirMade: removes the (then empty) lend directory.
UndoProblem undo(const DirMade& entry, const Undoing& u);

/// MakeLendDir is the domain's step, run by prepare before any socket's (executor.cpp); a
/// socket's run has nothing to do for it.
inline void run_step(SocketRun&, const MakeLendDir&) {}

/// The inode now at the socket's source path (resolved as prepare does), or nullopt: what
/// status compares the recorded inodes with.
std::optional<InodeId> source_inode_now(const JournalSocket& s);

}  // namespace sockhook
