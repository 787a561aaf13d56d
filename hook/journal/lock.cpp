#include "journal/lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "base/error.hpp"
#include "base/log.hpp"
#include "host/proc.hpp"

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

/// How long a release waits for the lock once it has killed the holder.
constexpr long kTakeOverMs = 5000;

/// Writes "PID STARTTIME" of this process into the lock file we hold, so that a release that
/// cannot wait any longer can tell exactly which process holds it.
void record_holder(const Fd& fd) {
  // Fixed width: the file keeps one size whoever holds it.
  char me[40];
  int n = std::snprintf(me, sizeof me, "%10d %20llu\n", static_cast<int>(::getpid()),
                        process_starttime(::getpid()));
  // Safe: our own lock file, root-only, through the fd we hold the lock on.
  if (::ftruncate(fd.get(), 0) == 0) (void)!::pwrite(fd.get(), me, static_cast<std::size_t>(n), 0);
}

/// Kills the sockhook that holds the lock on `fd`, if the file names it. Returns its pid, or 0
/// if the holder cannot be identified as a sockhook process (then nobody is signalled).
pid_t kill_holder(const Fd& fd) {
  char buf[64] = {};
  if (::pread(fd.get(), buf, sizeof buf - 1, 0) <= 0) return 0;
  long long pid = 0;
  unsigned long long start = 0;
  if (std::sscanf(buf, "%lld %llu", &pid, &start) != 2 || pid <= 1 || pid == ::getpid()) return 0;
  // The pid and start time come from the root-only state directory and are checked against
  // the live process through a pidfd (no reuse); and it must be this same executable.
  Fd pidfd = pidfd_if_same(static_cast<pid_t>(pid), start);
  struct stat mine {
  }, theirs{};
  auto exe = "/proc/" + std::to_string(pid) + "/exe";
  if (!pidfd || ::stat("/proc/self/exe", &mine) != 0 || ::stat(exe.c_str(), &theirs) != 0 ||
      mine.st_dev != theirs.st_dev || mine.st_ino != theirs.st_ino)
    return 0;
  // Safe: signals exactly the sockhook process that recorded itself as the lock's holder.
  if (pidfd_signal(pidfd.get(), SIGKILL) != 0) return 0;
  return static_cast<pid_t>(pid);
}

/// Opens (creating) and locks `name` in `dir`, until the lock is on the file that has that name
/// (the holder before us may have removed it). `what` names the lock's owner in the timeout
/// error. With `take_over`, a holder that keeps it past the timeout is killed (see DomainLock).
/// With `record`, the holder's identity goes into the file once locked (domain locks).
Fd lock_file(const Fd& dir, const std::string& name, int timeout_seconds, const std::string& what,
             bool record, bool take_over) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::seconds(timeout_seconds);
  bool took_over = false;
  for (;;) {
    // Safe: a lock file beneath the root-only state directory's fd, no symlink followed.
    Fd fd(::openat(dir.get(), name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) throw_errno("cannot open lock " + name);
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    int err = flock_with_timeout(fd.get(), left > 0 ? left : 1);
    if (err == ETIMEDOUT && take_over && !took_over) {
      took_over = true;
      if (pid_t holder = kill_holder(fd)) {
        log_warning("another sockhook (pid " + std::to_string(holder) + ") held " + name +
                    " for more than " + std::to_string(timeout_seconds) +
                    " s; killed it to release the domain");
        err = flock_with_timeout(fd.get(), kTakeOverMs);
      }
    }
    if (err == ETIMEDOUT)
      throw Error("another sockhook is busy with " + what + " (waited " +
                  std::to_string(timeout_seconds) + " s for " + name + ")");
    if (err != 0) throw_errno("cannot lock " + name, err);
    // The holder before us may have removed the file; then our lock is on a dead inode.
    struct stat held {
    }, now{};
    if (::fstat(fd.get(), &held) == 0 &&
        ::fstatat(dir.get(), name.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 &&
        held.st_dev == now.st_dev && held.st_ino == now.st_ino) {
      if (record) record_holder(fd);
      return fd;
    }
  }
}

}  // namespace

DomainLock::DomainLock(const Fd& state_dir, const std::string& uuid, int timeout_seconds,
                       Waiting waiting)
    : state_dir_(&state_dir),
      name_(uuid + ".lock"),
      fd_(lock_file(state_dir, name_, timeout_seconds, "this domain", true,
                    waiting == Waiting::kTakeOver)) {}

void DomainLock::remove_file() {
  // Safe: our own lock file, beneath the root-only state directory's fd.
  if (fd_) ::unlinkat(state_dir_->get(), name_.c_str(), 0);
}

InodeLock::InodeLock(const Fd& state_dir, InodeId inode, int timeout_seconds)
    : state_dir_(state_dir),
      name_("inode-" + std::to_string(inode.dev) + "-" + std::to_string(inode.ino) + ".lock"),
      fd_(lock_file(state_dir, name_, timeout_seconds, "this inode's ACL", false, false)) {}

InodeLock::~InodeLock() {
  // Unlink first, unlock (close) after: a waiter that then gets the old file sees that it has
  // no name any more and takes a new one, so two holders never overlap.
  ::unlinkat(state_dir_.get(), name_.c_str(), 0);
}

}  // namespace sockhook
