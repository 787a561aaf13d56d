#include "proxy/spawn.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <vector>

#include "base/error.hpp"
#include "host/proc.hpp"
#include "sys/creds.hpp"
#include "sys/socket.hpp"

namespace sockhook {
namespace {

constexpr int kStopTimeoutMs = 2000;
constexpr int kKillTimeoutMs = 1000;

/// Waits until the pidfd's process exits, at most `timeout_ms`. True if it exited.
bool wait_exit(int pidfd, int timeout_ms) {
  pollfd p{pidfd, POLLIN, 0};
  return retry_eintr([&] { return poll(&p, 1, timeout_ms); }) > 0;
}

/// What the child reports through its error pipe when set-up fails before exec.
struct ChildFailure {
  int step;
  int err;
};

constexpr const char* kChildSteps[] = {
    "cannot duplicate descriptors",
    "cannot start a session",
    "cannot drop privileges to the owner",
    "cannot exec",
};

[[noreturn]] void child_fail(int pipe_fd, int step) {
  const ChildFailure failure{step, errno};
  (void)!write(pipe_fd, &failure, sizeof failure);
  _exit(127);
}

}  // namespace

ProxyProcess spawn_proxy(const std::string& exe, Fd listen_fd, const ProxyOptions& options,
                         uid_t owner_uid, gid_t owner_gid, const std::string& label,
                         const RecordProxy& record, const Fd& connect_fd) {
  if (owner_uid == 0 || owner_gid == 0)
    throw Error("cannot start the proxy " + label + ": it never runs as root");
  if (!options.peer_domain || options.peer_domain->id < 0)
    throw Error("cannot start the proxy " + label +
                ": the domain has no id, so its QEMU cannot be told from another VM's");

  std::vector<std::string> args = {"sockhook",
                                   "proxy",
                                   "--listen-fd",
                                   "3",
                                   "--connect",
                                   options.connect_path,
                                   "--peer-uid",
                                   std::to_string(options.peer_uid),
                                   "--peer-domain",
                                   options.peer_domain ? options.peer_domain->to_string() : "",
                                   "--label",
                                   label,
                                   "--max-queued-bytes",
                                   std::to_string(options.limits.max_queued_bytes),
                                   "--max-queued-fds",
                                   std::to_string(options.limits.max_queued_fds),
                                   "--max-connections",
                                   std::to_string(options.limits.max_connections)};
  return spawn_as_owner(exe, std::move(listen_fd), std::move(args), owner_uid, owner_gid,
                        "the proxy for " + label, record, connect_fd);
}

ProxyProcess spawn_as_owner(const std::string& exe, Fd listen_fd, std::vector<std::string> args,
                            uid_t owner_uid, gid_t owner_gid, const std::string& what,
                            const RecordProxy& record, const Fd& fd4) {
  if (owner_uid == 0 || owner_gid == 0)
    throw Error("cannot start " + what + ": it never runs as root");
  // Everything the child needs is prepared here: between fork and exec it only makes
  // system calls, so it is safe even if this process had threads.
  Fd devnull(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) throw_errno("cannot open /dev/null");
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) < 0) throw_errno("cannot create a pipe");
  Fd report_read(pipe_fds[0]);
  Fd report_write(pipe_fds[1]);
  // The go-ahead: a socket pair, so that sending to a child that died gives EPIPE, not SIGPIPE.
  int go_fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go_fds) < 0)
    throw_errno("cannot create a socket pair");
  Fd go_send(go_fds[0]);
  Fd go_wait(go_fds[1]);
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  // fork_child: /dev/null as fds 0-2 (libvirt waits until every copy of the hook's stdout and
  // stderr is closed, so inheriting them would hang the VM start), the listening socket as 3,
  // `fd4` if given as 4 (the holder's report pipe, or the context socket a proxy connects
  // through), then our error pipe and the go-ahead; every other descriptor is closed before
  // anything else runs, so the child never holds the domain's lock, not even while it waits for
  // the go-ahead or its owner stops it before exec. Until the drop below it also dies with the
  // hook.
  const int extra = fd4 ? 1 : 0;
  const pid_t pid =
      fd4 ? fork_child(devnull.get(),
                       {listen_fd.get(), fd4.get(), report_write.get(), go_wait.get()})
          : fork_child(devnull.get(), {listen_fd.get(), report_write.get(), go_wait.get()});
  if (pid < 0) throw_errno("cannot fork the proxy");
  if (pid == 0) {
    const int report = 4 + extra;
    const int go = 5 + extra;
    // Neither reaches the exec'd program.
    if (fcntl(report, F_SETFD, FD_CLOEXEC) < 0 || fcntl(go, F_SETFD, FD_CLOEXEC) < 0)
      child_fail(report, 0);
    // Signals blocked or ignored by the hook would survive exec; the proxy needs SIGTERM.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    // Its own session: no controlling terminal, and not in libvirtd's process group, so a
    // signal to the hook's group does not reach the proxy. "/" pins no mount.
    if (setsid() < 0 || chdir("/") < 0) child_fail(report, 1);
    // An ordinary process, whatever libvirtd runs at: QEMU drives the proxy, so a realtime
    // proxy would let a guest take a CPU from everything else on it (issue 22), and the audio
    // benchmark showed no listener it helped (README, "What a listener hears"). Lowering a
    // priority needs no privilege and only concerns this process.
    const sched_param ordinary{.sched_priority = 0};
    sched_setscheduler(0, SCHED_OTHER, &ordinary);
    // Still root, so the owner cannot signal us: wait until the parent has recorded who we
    // are. Anything but the go-ahead byte (EOF: the hook died) ends us before any owner code.
    char byte = 0;
    if (retry_eintr([&] { return read(go, &byte, 1); }) != 1) _exit(0);
    // Drop root, groups first (changing groups needs root). After this the proxy holds
    // exactly the owner's identity: it can reach the owner's socket and nothing the owner
    // could not reach. The drop also clears the parent-death signal, as it must: from the
    // go-ahead on, the proxy is journaled and outlives the hook (R5).
    if (!drop_privileges(owner_uid, owner_gid)) child_fail(report, 2);
    execv(exe.c_str(), argv.data());
    child_fail(report, 3);
  }

  ProxyProcess proxy{pid, pidfd_open(pid)};
  const int pidfd_errno = errno;
  report_write.reset();
  go_wait.reset();
  if (!proxy.pidfd) {
    kill_child(pid, proxy.pidfd, kSpawnReapMs);
    throw_errno("cannot open a pidfd for the proxy", pidfd_errno);
  }
  try {
    // Safe to read by number: `pid` is our unreaped child, which runs as root until the
    // go-ahead, so neither the number nor the process can be swapped under us.
    if (record) record(pid, process_starttime(pid));
  } catch (...) {
    kill_child(pid, proxy.pidfd, kSpawnReapMs);
    throw;
  }
  const char go = 1;
  (void)!send(go_send.get(), &go, 1, MSG_NOSIGNAL);
  go_send.reset();

  // From here the child runs as the owner, who can stop it: every wait has a deadline.
  pollfd p{report_read.get(), POLLIN, 0};
  const int ready = retry_eintr([&] { return poll(&p, 1, kSpawnTimeoutMs); });
  if (ready <= 0) {
    kill_child(pid, proxy.pidfd, kSpawnReapMs);
    throw Error("cannot start " + what + ": its process did not start within " +
                std::to_string(kSpawnTimeoutMs / 1000) + " s (stopped by its owner?)");
  }
  ChildFailure failure{};
  const ssize_t n = retry_eintr([&] { return read(report_read.get(), &failure, sizeof failure); });
  if (n > 0) {
    kill_child(pid, proxy.pidfd, kSpawnReapMs);  // it exits at once after reporting
    const int step = std::clamp(failure.step, 0, static_cast<int>(std::size(kChildSteps)) - 1);
    throw_errno("cannot start " + what + ": " + kChildSteps[step], failure.err);
  }
  // EOF: exec closed the pipe, or the child died before it (killed by its owner).
  siginfo_t info{};
  if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(proxy.pidfd.get()), &info,
             WEXITED | WNOHANG | WNOWAIT) == 0 &&
      info.si_pid != 0) {
    waitpid(pid, nullptr, WNOHANG);
    throw Error("cannot start " + what + ": its process ended before exec");
  }
  return proxy;
}

void stop_proxy(int pidfd) {
  if (pidfd < 0) return;
  if (pidfd_signal(pidfd, SIGTERM) == 0 && !wait_exit(pidfd, kStopTimeoutMs)) {
    syslog(LOG_WARNING, "proxy did not stop after SIGTERM; killing it");
    if (pidfd_signal(pidfd, SIGKILL) == 0) wait_exit(pidfd, kKillTimeoutMs);
  }
  // Reap it if it is our child (when the same process spawned it); ECHILD otherwise.
  siginfo_t info{};
  waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
}

}  // namespace sockhook
