#include "sys/creds.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "base/error.hpp"
#include "sys/pidfd.hpp"

namespace sockhook {

bool drop_privileges(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) {
  if (uid == 0) return false;
  // Order matters: groups and gid while still root, the uid last. Dropping privileges is the
  // safe direction; each step is checked, and the proof below is what the caller relies on.
  const std::vector<gid_t> own{gid};
  const auto& supplementary = groups.empty() ? own : groups;
  if (::setgroups(supplementary.size(), supplementary.data()) != 0) return false;
  if (::setresgid(gid, gid, gid) != 0) return false;
  if (::setresuid(uid, uid, uid) != 0) return false;
  // No setuid binary or file capability can give privileges back after an exec.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  uid_t r = 0, e = 0, s = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  if (::getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid) return false;
  if (::getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid) return false;
  // The proof: root must be out of reach now, and no capability left.
  if (::setresuid(0, 0, 0) == 0 || ::setresgid(0, 0, 0) == 0 || ::setegid(0) == 0) return false;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[2]{};
  if (::syscall(SYS_capget, &header, caps) != 0 || caps[0].effective || caps[1].effective ||
      caps[0].permitted || caps[1].permitted)
    return false;
  return true;
}

namespace {

/// How long a killed child may take to die before we stop waiting for it. A process stuck
/// in a request to a FUSE server that never answers does not die at SIGKILL (it is in
/// uninterruptible sleep until the server answers or goes away).
constexpr int kReapTimeoutMs = 1000;

}  // namespace

bool die_with_parent(pid_t parent) {
  // Checked after setting it: a parent that died before the prctl has sent no signal, and
  // its children are ours no more (getppid then names whoever adopted us).
  return ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == 0 && ::getppid() == parent;
}

pid_t fork_child(int devnull, std::initializer_list<int> keep) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // The child. Root's descriptors (the domain lock, the state and lend directories, the
  // journal) must not live on in a process the owner controls or one that outlives the hook:
  // an flock lasts while any copy of its open file description does, so a child holding it
  // keeps `cleanup --stale` and the next hook of the domain out after the hook was killed.
  // And libvirt waits until every copy of the hook's stdout and stderr is closed.
  if (!die_with_parent(parent) || keep.size() > 6) ::_exit(125);
  // Copies above every target first, so that no dup2 below overwrites a descriptor still to
  // be moved.
  int copies[6];
  int i = 0;
  for (int fd : keep)
    if ((copies[i++] = ::fcntl(fd, F_DUPFD, 10)) < 0) ::_exit(125);
  const int null_copy = ::fcntl(devnull, F_DUPFD, 10);
  if (null_copy < 0 || ::dup2(null_copy, 0) < 0 || ::dup2(null_copy, 1) < 0 ||
      ::dup2(null_copy, 2) < 0)
    ::_exit(125);
  for (int k = 0; k < i; ++k)
    if (::dup2(copies[k], 3 + k) < 0) ::_exit(125);
  if (::syscall(SYS_close_range, static_cast<unsigned>(3 + i), ~0U, 0U) != 0) ::_exit(125);
  return 0;
}

/// Waits at most `ms` for child `pid` to end (through its pidfd, or polling without one)
/// and reaps it. Returns false, leaving it unreaped, if it has not ended by then.
bool reap_within(pid_t pid, const Fd& pidfd, int ms, int& status) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    pid_t r = retry_eintr([&] { return ::waitpid(pid, &status, WNOHANG); });
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    struct pollfd pfd {
      pidfd.get(), POLLIN, 0
    };
    // Without a pidfd, poll() with no descriptor is a bounded sleep between the checks.
    int wait_ms = pidfd ? static_cast<int>(left) : static_cast<int>(std::min<long>(left, 10));
    retry_eintr([&] { return ::poll(&pfd, pidfd ? 1 : 0, wait_ms); });
  }
}

bool end_child(pid_t pid, const Fd& pidfd, int ms, int& status, bool ending) {
  if (ending && reap_within(pid, pidfd, ms, status)) return true;
  // Safe: our own unreaped child, so `pid` is still that process and no other.
  ::kill(pid, SIGKILL);
  return reap_within(pid, pidfd, ms, status);
}

ChildOutput run_as_user(uid_t uid, gid_t gid, const std::function<int(int)>& body,
                        std::size_t max_bytes, int timeout_ms, const std::vector<gid_t>& groups) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("cannot create a pipe");
  Fd read_end(fds[0]), write_end(fds[1]);
  Fd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) throw_errno("cannot open /dev/null");
  const pid_t parent = ::getpid();
  pid_t pid = fork_child(devnull.get(), {write_end.get()});
  if (pid < 0) throw_errno("cannot fork");
  if (pid == 0) {
    // Only fd 3, the pipe, and /dev/null cross into the owner's hands. The drop clears the
    // parent-death signal (a change of credentials does), so it is set again.
    if (!drop_privileges(uid, gid, groups) || !die_with_parent(parent)) ::_exit(125);
    ::_exit(body(3));
  }
  // Our own unreaped child: the pid cannot be reused, so this pidfd is that process.
  Fd pidfd = pidfd_open(pid);
  write_end.reset();
  devnull.reset();
  ChildOutput out;
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd pfd {
      read_end.get(), POLLIN, 0
    };
    if (retry_eintr([&] { return ::poll(&pfd, 1, static_cast<int>(left.count())); }) <= 0) continue;
    auto n = retry_eintr([&] { return ::read(read_end.get(), buf, sizeof buf); });
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) break;
    out.output.append(buf, static_cast<std::size_t>(n));
    if (out.output.size() > max_bytes) break;  // too much: the caller refuses it
  }
  read_end.reset();
  int status = 0;
  // The pipe's end (EOF) means the child is exiting; it still gets a bound, like a killed one.
  bool reaped =
      end_child(pid, pidfd, kReapTimeoutMs, status, !timed_out && out.output.size() <= max_bytes);
  // A child that does not die even at SIGKILL is abandoned, not waited for: when the hook
  // exits it is reparented to init, which reaps it whenever it ends. That is safe: it runs
  // as the owner with no capability and no_new_privs, holds only /dev/null and a pipe nobody
  // reads (fork_child closed root's descriptors, the lock among them), and can change nothing
  // the owner could not change anyway.
  if (timed_out || !reaped)
    throw Error(std::string("the process running as uid ") + std::to_string(uid) +
                " did not finish within " + std::to_string(timeout_ms) + " ms" +
                (reaped ? " and was killed" : " and does not die; abandoned"));
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

}  // namespace sockhook
