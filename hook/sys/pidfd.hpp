#pragma once

#include <sys/types.h>

#include "sys/fd.hpp"

namespace sockhook {

/// pidfd_open(2): a pidfd for `pid` (invalid, errno set, if it does not exist or `pid` is not
/// positive). For our own unreaped child it names that very process.
Fd pidfd_open(pid_t pid);

/// pidfd_send_signal(2): sends `sig` (0: only asks whether the process lives) to the process
/// behind `pidfd`, which cannot be another one that reused its pid. 0, or -1 with errno.
int pidfd_signal(int pidfd, int sig);

}  // namespace sockhook
