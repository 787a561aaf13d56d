#pragma once

#include "transaction.hpp"

namespace sockhook {

/// CopyFile: reads the companion file in a child process that runs as the owner (privileges
/// dropped, no symlinks followed, at most max_bytes), then writes it as root into the lend
/// directory (O_CREAT|O_EXCL|O_NOFOLLOW), owned by QEMU's user, mode 0400 (S8). A missing
/// optional file is skipped with a log line. Undone as a kFile entry.
void copy_file(SocketRun& run, const CopyFile& step);

}  // namespace sockhook
