#include "lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>

#include "error.hpp"

namespace sockhook {
namespace {

void on_alarm(int) {}

/// flock(LOCK_EX) that gives up after `ms`: an interval timer interrupts the wait (EINTR),
/// with a handler installed without SA_RESTART. Returns 0 or an errno value.
int flock_with_timeout(int fd, long ms) {
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
  if (errno != EWOULDBLOCK) return errno;
  struct sigaction sa {
  }, old{};
  sa.sa_handler = on_alarm;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGALRM, &sa, &old);
  struct itimerval timer {
  }, old_timer{};
  timer.it_value.tv_sec = ms / 1000;
  timer.it_value.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  ::setitimer(ITIMER_REAL, &timer, &old_timer);
  int rc = ::flock(fd, LOCK_EX);
  int err = rc == 0 ? 0 : errno;
  struct itimerval off {};
  ::setitimer(ITIMER_REAL, &off, nullptr);
  ::sigaction(SIGALRM, &old, nullptr);
  return err == EINTR ? ETIMEDOUT : err;
}

/// Opens (creating) and locks `name` in `dir`, until the lock is on the file that has that name
/// (the holder before us may have removed it). `what` names the lock's owner in the timeout
/// error.
Fd lock_file(const Fd& dir, const std::string& name, int timeout_seconds, const std::string& what) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::seconds(timeout_seconds);
  for (;;) {
    // Safe: a lock file beneath the root-only state directory's fd, no symlink followed.
    Fd fd(::openat(dir.get(), name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) throw_errno("cannot open lock " + name);
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    int err = flock_with_timeout(fd.get(), left > 0 ? left : 1);
    if (err == ETIMEDOUT)
      throw Error("another sockhook is busy with " + what + " (waited " +
                  std::to_string(timeout_seconds) + " s for " + name + ")");
    if (err != 0) throw_errno("cannot lock " + name, err);
    // The holder before us may have removed the file; then our lock is on a dead inode.
    struct stat held {
    }, now{};
    if (::fstat(fd.get(), &held) == 0 &&
        ::fstatat(dir.get(), name.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 &&
        held.st_dev == now.st_dev && held.st_ino == now.st_ino)
      return fd;
  }
}

}  // namespace

DomainLock::DomainLock(const Fd& state_dir, const std::string& uuid, int timeout_seconds)
    : state_dir_(&state_dir),
      name_(uuid + ".lock"),
      fd_(lock_file(state_dir, name_, timeout_seconds, "this domain")) {}

void DomainLock::remove_file() {
  // Safe: our own lock file, beneath the root-only state directory's fd.
  if (fd_) ::unlinkat(state_dir_->get(), name_.c_str(), 0);
}

InodeLock::InodeLock(const Fd& state_dir, InodeId inode, int timeout_seconds)
    : state_dir_(state_dir),
      name_("inode-" + std::to_string(inode.dev) + "-" + std::to_string(inode.ino) + ".lock"),
      fd_(lock_file(state_dir, name_, timeout_seconds, "this inode's ACL")) {}

InodeLock::~InodeLock() {
  // Unlink first, unlock (close) after: a waiter that then gets the old file sees that it has
  // no name any more and takes a new one, so two holders never overlap.
  ::unlinkat(state_dir_.get(), name_.c_str(), 0);
}

}  // namespace sockhook
