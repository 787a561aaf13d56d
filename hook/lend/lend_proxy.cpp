#include "lend/lend_proxy.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/error.hpp"
#include "base/log.hpp"
#include "host/domain_cgroup.hpp"
#include "host/proc.hpp"
#include "lend/lend_dir.hpp"
#include "proxy/spawn.hpp"
#include "sys/file.hpp"
#include "sys/root_dir.hpp"

namespace sockhook {

Fd make_listen_socket(const Fd& dir, const std::string& name, uid_t uid, gid_t gid) {
  Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("socket");
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  // Through the directory's fd: no path to re-resolve, and no 108-byte sun_path limit.
  auto path = dir.proc_path() + "/" + name;
  if (path.size() >= sizeof addr.sun_path) throw Error("socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // The umask makes the socket 0600 from its first instant: never more open than that.
  mode_t old = ::umask(0177);
  // Safe: creates a new socket file in the root-only lend directory (EADDRINUSE if taken).
  int rc = ::bind(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::umask(old);
  if (rc != 0) throw_errno("bind", err);
  // Safe by name: only root can write the lend directory, so `name` is the socket we bound.
  if (::fchownat(dir.get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("chown");
  if (::fchmodat(dir.get(), name.c_str(), 0600, 0) != 0) throw_errno("chmod");
  if (::listen(sock.get(), SOMAXCONN) != 0) throw_errno("listen");
  return sock;
}

ServedLend::ServedLend(SocketRun& run, const std::string& listen_path, uid_t owner)
    : tx_(run.tx), path_(listen_path) {
  run.name_in_lend_dir(listen_path, "cannot serve the lend");
  entry_ = run.entry<ProxyStarted>(listen_path);
  entry_.owner = owner;
  entry_.label = run.label;
  index_ = tx_.record(entry_);
}

ServedLend::ServedLend(Transaction& tx, std::size_t index, const std::string& label)
    : tx_(tx), index_(index), entry_(std::get<ProxyStarted>(tx.journal().entries.at(index))) {
  path_ = entry_.path;
  entry_.pid = 0;
  entry_.starttime = 0;
  entry_.listen_ino = 0;
  entry_.label = label;
  tx_.update(index_, entry_);
}

Fd ServedLend::listen(const Fd& dir, uid_t qemu_uid, gid_t qemu_gid) {
  Fd sock = make_listen_socket(dir, base_name(path_), qemu_uid, qemu_gid);
  entry_.listen_ino = fstat_or_throw(sock, path_).st_ino;
  tx_.update(index_, entry_);
  return sock;
}

std::function<void(pid_t, unsigned long long)> ServedLend::recorder() {
  return [this](pid_t pid, unsigned long long starttime) {
    entry_.pid = pid;
    entry_.starttime = starttime;
    tx_.update(index_, entry_);
  };
}

namespace {

/// The descriptor the proxy connects through (fd 4, /proc/self/fd/4) when its source is the
/// lend's context socket behind it: the owner, as whom the proxy runs, cannot traverse the
/// root-only lend directory, and nothing else should reach that socket.
Fd open_context_socket(const Fd& dir, const StartProxy& step) {
  if (dir_name(step.source) != dir_name(step.listen_path))
    throw Error("the context socket " + step.source + " is not in the lend directory");
  auto name = base_name(step.source);
  // Safe by name: only root can write the lend directory, so `name` is the socket the context
  // step bound there; O_PATH opens nothing, O_NOFOLLOW refuses a link, and it is checked below.
  Fd fd(::openat(dir.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw_errno("cannot open the context socket " + step.source);
  auto st = fstat_or_throw(fd, step.source);
  if (!S_ISSOCK(st.st_mode) || st.st_uid != step.owner || (st.st_mode & 077) != 0)
    throw Error(step.source + " is not the owner's private context socket");
  return fd;
}

/// Binds, records the socket inode, spawns, records the pid: the part shared by start and
/// restart.
void launch(ServedLend& lend, const Fd& dir, const StartProxy& step, const ExecContext& ctx,
            gid_t qemu_gid) {
  // Which VM's QEMU alone may connect (S10): checked before anything is created.
  auto domain = DomainCgroup::parse(step.peer_domain.value_or(""));
  if (!domain)
    throw Error(
        "the journal names no domain for the proxy to serve (written before sockhook "
        "checked the peer's VM); restart the VM to lend again");
  if (domain->id < 0)
    throw Error("the domain has no id, so its QEMU cannot be told from another VM's");
  Fd source = step.context_source() ? open_context_socket(dir, step) : Fd();
  Fd sock = lend.listen(dir, step.qemu_uid, qemu_gid);
  ProxyOptions options;
  options.connect_path = source ? "/proc/self/fd/4" : step.source;
  options.peer_uid = step.qemu_uid;
  options.peer_domain = domain;
  // spawn_proxy gives the child /dev/null for stdin, stdout and stderr (libvirt waits for
  // the hook's to close) and drops it to the owner before exec. The journal holds the
  // child's pid and start time before it runs any code as the owner: undo_proxy can always
  // name exactly this process, and a hook killed before that leaves a child that exits.
  spawn_proxy(ctx.self_exe, std::move(sock), options, step.owner, step.owner_gid, lend.label(),
              lend.recorder(), source);
}

}  // namespace

void run_step(SocketRun& run, const StartProxy& step) {
  in_context("cannot start a proxy on " + step.listen_path, [&] {
    ServedLend lend(run, step.listen_path, step.owner);
    launch(lend, run.lend_dir, step, run.ctx, run.qemu_gid);
  });
}

bool proxy_alive(const ProxyStarted& e) {
  // A zombie (dead, not reaped: its parent, the hook, is gone and init may be slow) is dead.
  if (!pidfd_if_same(e.pid, e.starttime)) return false;
  char state = process_state(e.pid);
  return state != 0 && state != 'Z' && state != 'X';
}

UndoProblem stop_served(const ProxyStarted& e) {
  // Only the process the journal names, verified by its start time, is ever stopped. With
  // no pid recorded, the hook died before its child got the go-ahead: that child exits by
  // itself, as root, without running anything (spawn_proxy).
  if (Fd fd = pidfd_if_same(e.pid, e.starttime)) stop_proxy(fd.get());
  return remove_from_lend_dir(e.path, 0);
}

UndoProblem undo(const ProxyStarted& e, const Undoing&) { return stop_served(e); }

void check_health(const ProxyStarted& e, const Journal&, const JournalSocket& s, LendHealth& h) {
  // The process QEMU connects to: the proxy, or the holder of a context that is the lend.
  const Step* serving = serving_step(s.steps, e.path);
  const auto* holder = serving ? std::get_if<StartContext>(serving) : nullptr;
  if (e.path == s.target) h.proxy_pid = e.pid;
  if (holder) h.holder_pid = e.pid;
  if (proxy_alive(e)) return;
  // A context behind a proxy (S10) has both: each is reported (health_of joins them).
  // A compositor keeps the VM's clients when the holder dies and accepts no new one
  // (LIBVIRT-NOTES, "Security contexts"); PipeWire drops them.
  h.dead.push_back(!holder             ? "the proxy is not running"
                   : holder->wayland() ? "the context's holder is not running, so "
                                         "the compositor accepts no new connection "
                                         "from the VM"
                                       : "the context's holder is not running, so "
                                         "PipeWire no longer serves the VM");
}

UndoProblem relaunch(Transaction& tx, std::size_t index, const std::string& label,
                     const std::string& listen_path, const std::string& what,
                     const std::function<void(ServedLend&, const Fd&)>& launch) {
  if (auto problem = stop_served(std::get<ProxyStarted>(tx.journal().entries.at(index))))
    return problem;
  auto started = attempt([&] {
    ServedLend lend(tx, index, label);
    Fd dir = open_lend_dir(dir_name(listen_path));
    if (!dir) throw Error("no lend directory");
    launch(lend, dir);
  });
  if (!started) return what + ": " + started.what();
  return std::nullopt;
}

UndoProblem restart_proxy(Transaction& tx, std::size_t index, const StartProxy& step,
                          const ExecContext& ctx, const std::string& label, gid_t qemu_gid) {
  return relaunch(tx, index, label, step.listen_path,
                  "cannot restart the proxy on " + step.listen_path,
                  [&](ServedLend& lend, const Fd& dir) { launch(lend, dir, step, ctx, qemu_gid); });
}

}  // namespace sockhook
