// The life both holders share (context_holder.cpp for PipeWire, wayland_holder.cpp for a
// compositor): connect to the owner's server, tell the hook how the start went, and hold the
// context's close_fd until a stop signal or until the server lets go of it. Header only: each
// holder is a program of its own and links nothing of sockhook (tests/layers.sh).
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sockhook::holder {

/// A stream socket connected to `path`, as this process (the owner), or -1 with errno set.
inline int connect_to(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

/// Tells the hook how it went, once, and closes the pipe (none if `fd` < 0).
inline void report(int fd, const std::string& what) {
  if (fd < 0) return;
  (void)!::write(fd, what.data(), what.size());
  ::close(fd);
}

/// SIGTERM and SIGINT, blocked and waiting in a signalfd (libpipewire blocks them in its
/// threads anyway), or -1 with errno set.
inline int stop_signals() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  return ::signalfd(-1, &stop, SFD_CLOEXEC);
}

/// Holds `hold`, one end of the context's close_fd, until a stop signal on `stop_fd` or until
/// the server closes its end (`events`: what `hold` reports then, POLLIN for a read end, none
/// for a write end, whose error poll always reports): the owner's server ended (a restart, a
/// logout) and the lend with it. Running on then would hide a dead lend from status; ending
/// lets status say so, and refresh or reconnect start a holder on the new server. Closing
/// `hold` tells the server to stop serving the lend. Returns the exit status: 0 when stopped,
/// 1 when the server let go first.
inline int hold_until_stopped(int stop_fd, int hold, short events, const std::string& label,
                              const char* server) {
  pollfd waits[2] = {{stop_fd, POLLIN, 0}, {hold, events, 0}};
  while (::poll(waits, 2, -1) < 0 && errno == EINTR) {
  }
  ::close(hold);
  if (waits[0].revents == 0 && waits[1].revents != 0) {
    ::syslog(LOG_WARNING, "context %s: %s stopped serving the lend (it ended)", label.c_str(),
             server);
    return 1;
  }
  return 0;
}

}  // namespace sockhook::holder
