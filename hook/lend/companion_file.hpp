#pragma once

#include "journal/transaction.hpp"

namespace sockhook {

/// CopyFile: reads the companion file in a child process that runs as the owner (privileges
/// dropped, only /dev/null and a pipe inherited), which opens the step's base, checks its
/// owner and resolves the relative path beneath it (no symlinks, no mount crossed, at most
/// max_bytes, at most 5 s; a child that does not finish is killed, or abandoned if it cannot
/// die), then writes it as root into the lend directory (O_CREAT|O_EXCL|O_NOFOLLOW), owned by
/// QEMU's user, mode 0400 (S8). An optional file that is missing, unreadable or stalled is
/// skipped with a log line. Undone as a FileMade (lend_dir.hpp).
void run_step(SocketRun& run, const CopyFile& step);

}  // namespace sockhook
