#include "sys/resolve.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "base/error.hpp"
#include "sys/creds.hpp"
#include "sys/file.hpp"
#include "sys/pidfd.hpp"

namespace sockhook {
namespace {

/// Never follow a symlink, never leave the directory, never cross into another mount.
constexpr unsigned long long kBeneath = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV;

std::string kind_of(mode_t mode) {
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a socket";
}

/// The reason an openat2 beneath the runtime directory failed, as a person would say it.
std::string resolve_reason(int err, const std::string& path) {
  switch (err) {
    case ELOOP:
      return "a component of " + path + " is a symbolic link";
    case EXDEV:
      return path + " crosses a mount point or leaves its directory";
    case ENOTDIR:
      return "a component of " + path + " is not a directory";
    case ENOENT:
      return path + " does not exist";
    default:
      return "cannot resolve " + path + ": " + std::strerror(err);
  }
}

/// True for the file systems a user-space process serves (FUSE, with or without a subtype).
bool served_by_a_process(std::string_view fstype) {
  return fstype == "fuse" || fstype == "fuseblk" || fstype.starts_with("fuse.") ||
         fstype.starts_with("fuseblk.");
}

/// The type of the file system `fd` is on, as /proc/self/mountinfo names it ("tmpfs",
/// "fuse.sshfs"), or "" if it cannot be told. Only the VFS answers: the mount id from fdinfo,
/// the type from the mount table; the file system itself is never asked.
std::string fstype_of(int fd) {
  auto info = try_read_file("/proc/self/fdinfo/" + std::to_string(fd), 4096).value_or("");
  auto at = info.find("\nmnt_id:");
  if (at == std::string::npos) return "";
  auto id = std::strtoul(info.c_str() + at + 8, nullptr, 10);
  // A host has a few hundred mounts; fusermount allows 1000 more. Past the cap: unknown.
  auto table = try_read_file("/proc/self/mountinfo", 8 << 20).value_or("");
  std::size_t line = 0;
  while (line < table.size()) {
    auto end = table.find('\n', line);
    if (end == std::string::npos) end = table.size();
    std::string_view l(table.data() + line, end - line);
    line = end + 1;
    if (std::strtoul(std::string(l.substr(0, l.find(' '))).c_str(), nullptr, 10) != id) continue;
    auto dash = l.find(" - ");
    if (dash == std::string_view::npos) return "";
    auto type = l.substr(dash + 3);
    return std::string(type.substr(0, type.find(' ')));
  }
  return "";
}

/// In the child of open_owner_dir: opens `path`, sends "O<fstype>" and the fd, or "E<errno>".
int admit_child(int sock, const std::string& path) {
  auto send = [&](const std::string& msg, int fd) {
    struct iovec iov {
      const_cast<char*>(msg.data()), msg.size()
    };
    struct msghdr mh {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0) {
      mh.msg_control = control;
      mh.msg_controllen = sizeof control;
      auto* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    return retry_eintr([&] { return ::sendmsg(sock, &mh, MSG_NOSIGNAL); }) < 0 ? 1 : 0;
  };
  Fd fd = openat2_fd(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                     RESOLVE_NO_SYMLINKS);
  if (!fd) return send("E" + std::to_string(errno), -1);
  return send("O" + fstype_of(fd.get()), fd.get());
}

/// The outcome of one attempt: a source, or the deepest existing directory where a name is
/// missing (to watch), or a hard failure (thrown).
struct Attempt {
  std::optional<VerifiedSource> source;
  Fd missing_in;  ///< the directory that lacks the next component
  InodeId missing_in_id;
  std::string missing_path;
};

class Resolver {
 public:
  explicit Resolver(const SourceSpec& spec) : spec_(spec) {
    if (spec_.relative.empty() || spec_.relative.front() == '/')
      throw Error("bad relative path '" + spec_.relative + "'");
    admin_ = spec_.base == "/";
    flags_ = admin_ ? (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) : kBeneath;
  }

  /// The socket's absolute path, for messages.
  std::string path() const { return (admin_ ? "" : spec_.base) + "/" + spec_.relative; }

  Attempt attempt() {
    VerifiedSource src;
    src.path = path();
    // The base: an absolute path whose components above it belong to root (/run/user); no
    // symlink anywhere on the way (RESOLVE_NO_SYMLINKS from the root).
    VerifiedDir base;
    base.path = spec_.base;
    // The owner's directory is admitted by a child with a deadline (R6): its file system is
    // then one that no process of the owner's serves.
    base.fd = open_socket_base(spec_.base);
    if (!base.fd) throw Error(spec_.base + " does not exist (is the owner logged in?)", ENOENT);
    base.st = fstat_checked(base.fd, spec_.base);
    if (!S_ISDIR(base.st.st_mode)) throw Error(spec_.base + " is not a directory");
    // S2: the runtime directory must be the owner's own.
    if (!admin_) require_owner(base.st, spec_.base);
    src.dirs.push_back(std::move(base));

    // Each directory on the way down, beneath the previous one.
    std::string rest = spec_.relative;
    std::string walked;
    for (auto slash = rest.find('/'); slash != std::string::npos; slash = rest.find('/')) {
      auto name = rest.substr(0, slash);
      rest = rest.substr(slash + 1);
      walked += (walked.empty() ? "" : "/") + name;
      const auto& parent = src.dirs.back();
      VerifiedDir dir;
      dir.relative = walked;
      dir.path = (admin_ ? "" : spec_.base) + "/" + walked;
      dir.fd =
          open_if_exists(parent.fd.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC, flags_, dir.path);
      if (!dir.fd) return missing(parent, dir.path);
      dir.st = fstat_checked(dir.fd, dir.path);
      // One component at a time, so a symlink here comes back as itself: refuse it as
      // openat2 refuses one in the middle of a path.
      if (S_ISLNK(dir.st.st_mode)) throw Error(dir.path + " is a symbolic link", ELOOP);
      if (!S_ISDIR(dir.st.st_mode))
        throw Error(dir.path + " is " + kind_of(dir.st.st_mode) + ", not a directory");
      if (!admin_) require_owner(dir.st, dir.path);
      src.dirs.push_back(std::move(dir));
    }

    // The socket itself. With O_PATH|O_NOFOLLOW, openat2 returns a final symlink as itself,
    // so the type check below is what refuses it.
    src.fd = open_if_exists(src.dirs.back().fd.get(), rest, O_PATH | O_NOFOLLOW | O_CLOEXEC, flags_,
                            src.path);
    if (!src.fd) return missing(src.dirs.back(), src.path);
    src.st = fstat_checked(src.fd, src.path);
    if (!S_ISSOCK(src.st.st_mode))
      throw Error("not a socket (it is " + kind_of(src.st.st_mode) + ")");
    require_owner(src.st, "it");
    // The owner check above already refuses a hard link to anyone else's socket (and the
    // kernel's protected_hardlinks forbids linking a socket one does not own). A second
    // link to the owner's own socket would be harmless, but no server makes one, so refusing
    // it costs nothing and keeps the inode's identity simple for release.
    if (src.st.st_nlink != 1)
      throw Error("it has " + std::to_string(src.st.st_nlink) + " hard links (expected 1)");
    Attempt out;
    out.source = std::move(src);
    return out;
  }

 private:
  static Attempt missing(const VerifiedDir& dir, const std::string& path) {
    Attempt out;
    // A duplicate: the chain that owns `dir` ends with this attempt; the watch outlives it.
    out.missing_in = Fd(::fcntl(dir.fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!out.missing_in) throw_errno("cannot wait for " + path + ": dup");
    out.missing_in_id = inode_of(dir.st);
    out.missing_path = path;
    return out;
  }

  /// openat2 of `name` beneath `dirfd`: an invalid Fd if it does not exist; any other failure
  /// throws, saying why in terms of `path`.
  static Fd open_if_exists(int dirfd, const std::string& name, int flags,
                           unsigned long long resolve, const std::string& path) {
    Fd fd = openat2_fd(dirfd, name, flags, resolve);
    if (!fd && errno != ENOENT) {
      int err = errno;
      throw Error(resolve_reason(err, path), err);
    }
    return fd;
  }

  /// S2: `what` (a directory on the way, or "it", the socket) must belong to the owner.
  void require_owner(const struct stat& st, const std::string& what) const {
    if (st.st_uid != spec_.owner)
      throw Error(what + " is owned by uid " + std::to_string(st.st_uid) +
                  ", not by the owner (uid " + std::to_string(spec_.owner) + ")");
  }

  static struct stat fstat_checked(const Fd& fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw_errno("cannot stat " + path);
    return st;
  }

  const SourceSpec& spec_;
  bool admin_ = false;
  unsigned long long flags_ = kBeneath;
};

}  // namespace

Fd open_socket_base(const std::string& base) {
  // Safe: "/" is root's, and no owner's process serves it.
  if (base == "/")
    return openat2_fd(AT_FDCWD, base, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                      RESOLVE_NO_SYMLINKS);
  return open_owner_dir(base);
}

Fd openat2_fd(int dirfd, const std::string& path, int flags, unsigned long long resolve) {
  struct open_how how {};
  how.flags = static_cast<unsigned long long>(flags);
  how.resolve = resolve;
  return Fd(static_cast<int>(
      retry_eintr([&] { return ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how); })));
}

Fd open_owner_dir(const std::string& path, int timeout_ms) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
    throw_errno("cannot open " + path + ": socketpair");
  Fd mine(pair[0]), theirs(pair[1]);
  Fd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) throw_errno("cannot open /dev/null");
  // Only the socket and /dev/null (fork_child): a child stuck for ever holds no lock, and not
  // the hook's stdout or stderr, for which libvirt waits; and one that can die dies with the
  // hook.
  pid_t pid = fork_child(devnull.get(), {theirs.get()});
  if (pid < 0) throw_errno("cannot open " + path + ": fork");
  if (pid == 0) ::_exit(admit_child(3, path));
  // Our own unreaped child: the pid cannot be reused, so this pidfd is that process.
  Fd pidfd = pidfd_open(pid);
  theirs.reset();
  devnull.reset();
  char msg[256] = {};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct iovec iov {
    msg, sizeof msg - 1
  };
  struct msghdr mh {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  struct pollfd pfd {
    mine.get(), POLLIN, 0
  };
  ssize_t n = -1;
  if (retry_eintr([&] { return ::poll(&pfd, 1, timeout_ms); }) == 1)
    n = retry_eintr([&] { return ::recvmsg(mine.get(), &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); });
  Fd fd;
  for (auto* c = CMSG_FIRSTHDR(&mh); n > 0 && c; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int got = -1;
      std::memcpy(&got, CMSG_DATA(c), sizeof got);
      fd.reset(got);
    }
  int status = 0;
  bool reaped = end_child(pid, pidfd, 1000, status, n > 0);
  // A child that does not die is abandoned, not waited for: at the hook's exit it goes to
  // init, which reaps it when the request that holds it ends. It is harmless meanwhile: it
  // holds only /dev/null and a socket nobody reads, and it was only opening a directory.
  if (n <= 0)
    throw Error("cannot open " + path + ": it did not open within " + std::to_string(timeout_ms) +
                    " ms (is a file system of its owner's mounted there?); " +
                    (reaped ? "the opener was killed" : "the opener is stuck and abandoned"),
                ETIMEDOUT);
  std::string_view answer(msg, static_cast<std::size_t>(n));
  if (answer.front() == 'E') {
    errno = static_cast<int>(std::strtol(msg + 1, nullptr, 10));
    if (errno == ENOENT) return Fd();
    int err = errno;
    throw Error(resolve_reason(err, path), err);
  }
  auto fstype = std::string(answer.substr(1));
  if (answer.front() != 'O' || !fd) throw Error("cannot open " + path + ": no answer");
  if (served_by_a_process(fstype))
    throw Error(path + " is on a file system that a process serves (" + fstype +
                "), which could hold the hook for ever; refused");
  if (fstype.empty()) throw Error("cannot tell which file system " + path + " is on; refused");
  return fd;
}

VerifiedSource resolve_source(const SourceSpec& spec) {
  using Clock = std::chrono::steady_clock;
  auto deadline = spec.waits_from.value_or(Clock::now()) + std::chrono::seconds(spec.wait_seconds);
  Resolver resolver(spec);
  Fd inotify;
  std::set<std::pair<dev_t, ino_t>> watched;
  for (;;) {
    auto attempt = resolver.attempt();
    if (attempt.source) return std::move(*attempt.source);
    Fd dir = std::move(attempt.missing_in);
    auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (remaining <= 0) {
      std::string waited;
      if (spec.wait_seconds > 0)
        waited = spec.waits_from ? " (its wait of " + std::to_string(spec.wait_seconds) +
                                       " s, counted from the hook's start, is over)"
                                 : " (waited " + std::to_string(spec.wait_seconds) + " s)";
      // The socket itself: "it"; a directory on the way: by name.
      auto what =
          attempt.missing_path == resolver.path() ? std::string("it") : attempt.missing_path;
      throw Error(what + " does not exist" + waited, ENOENT);
    }
    // Watch the deepest directory that exists, then look again before sleeping, so that a
    // name created between the attempt and the watch is not missed. The watch goes through
    // /proc/self/fd: the verified directory, not whatever its path names now.
    if (!inotify) {
      inotify = Fd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
      if (!inotify) throw_errno("cannot wait for the socket: inotify");
    }
    auto key = std::make_pair(attempt.missing_in_id.dev, attempt.missing_in_id.ino);
    if (watched.insert(key).second) {
      if (::inotify_add_watch(inotify.get(), dir.proc_path().c_str(),
                              IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) <
          0)
        throw_errno("cannot wait for the socket: inotify_add_watch");
      continue;
    }
    struct pollfd pfd {
      inotify.get(), POLLIN, 0
    };
    int n = retry_eintr([&] { return ::poll(&pfd, 1, static_cast<int>(remaining)); });
    if (n < 0) throw_errno("cannot wait for the socket: poll");
    // Drain the events; which one it was does not matter, the next attempt looks again.
    alignas(struct inotify_event) char buf[4096];
    while (::read(inotify.get(), buf, sizeof buf) > 0) {
    }
  }
}

}  // namespace sockhook
