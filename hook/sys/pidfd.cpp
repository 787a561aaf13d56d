#include "sys/pidfd.hpp"

#include <sys/syscall.h>
#include <unistd.h>

namespace sockhook {

Fd pidfd_open(pid_t pid) {
  if (pid <= 0) return Fd();
  return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

int pidfd_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

}  // namespace sockhook
