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

#include <chrono>

#include "error.hpp"

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

ChildOutput run_as_user(uid_t uid, gid_t gid, const std::function<int(int)>& body,
                        std::size_t max_bytes, int timeout_ms, const std::vector<gid_t>& groups) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("cannot create a pipe");
  Fd read_end(fds[0]), write_end(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("cannot fork");
  if (pid == 0) {
    read_end.release();
    if (!drop_privileges(uid, gid, groups)) ::_exit(125);
    ::_exit(body(write_end.get()));
  }
  write_end.reset();
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
  if (timed_out || out.output.size() > max_bytes) ::kill(pid, SIGKILL);
  read_end.reset();
  int status = 0;
  retry_eintr([&] { return ::waitpid(pid, &status, 0); });
  if (timed_out) throw Error("the reading process did not finish in time");
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

}  // namespace sockhook
