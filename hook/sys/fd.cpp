#include "sys/fd.hpp"

#include <unistd.h>

namespace sockhook {

void Fd::reset(int fd) {
  // close() is not retried on EINTR: on Linux the descriptor is gone either way.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string Fd::proc_path() const { return "/proc/self/fd/" + std::to_string(fd_); }

}  // namespace sockhook
