#include "lend/companion_file.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"
#include "lend/lend_dir.hpp"
#include "sys/creds.hpp"
#include "sys/file.hpp"
#include "sys/root_dir.hpp"

namespace sockhook {
namespace {

/// How long the owner's file may take to read (R6); the child is then killed or abandoned.
constexpr int kTimeoutMs = 5000;

/// Runs in the child, as the owner: writes 'O' and the content, 'M' if it does not exist, or
/// 'E' and a reason.
int read_in_child(const CopyFile& step, int out) {
  auto reply = [&](char status, const std::string& body) {
    std::string msg = status + body;
    std::size_t done = 0;
    while (done < msg.size()) {
      auto n = ::write(out, msg.data() + done, msg.size() - done);
      if (n <= 0) return 1;
      done += static_cast<std::size_t>(n);
    }
    return status == 'O' ? 0 : 2;
  };
  // The base (home or runtime directory, or "/") is named by the password database and the
  // planner, and opened by path: /home or the home itself may be a mount of their own. It
  // must belong to the owner (root for "/"), so that we read the owner's own tree.
  Fd base(::open(step.base.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!base) return reply(errno == ENOENT ? 'M' : 'E', step.base + ": " + std::strerror(errno));
  struct stat bst {};
  uid_t expected = step.base == "/" ? 0 : step.owner;
  if (::fstat(base.get(), &bst) != 0) return reply('E', step.base + ": " + std::strerror(errno));
  if (bst.st_uid != expected)
    return reply('E', step.base + " is owned by uid " + std::to_string(bst.st_uid) + ", not " +
                          std::to_string(expected));
  // Beneath it, no symlink is followed (the owner cannot point us at a file only root could
  // read) and no mount is crossed: the owner can mount FUSE on any directory they own, and a
  // FUSE server that never answers would stall the read.
  auto fd = openat2_fd(base.get(), step.relative, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                       RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV);
  if (!fd) {
    int err = errno;
    if (err == ENOENT) return reply('M', "it does not exist");
    if (err == ELOOP) return reply('E', "a component of the path is a symbolic link");
    if (err == EXDEV)
      return reply(
          'E', "a component of the path beneath " + step.base + " is a mount point (not crossed)");
    return reply('E', std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return reply('E', std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return reply('E', "not a regular file");
  auto read = attempt([&] { return read_all(fd, step.max_bytes); });
  return read ? reply('O', *read.value) : reply('E', read.what());
}

/// Reads the owner's file as the owner. Returns the content, or nullopt if it does not exist;
/// throws Error (without the "cannot copy" prefix) if it cannot be read.
std::optional<std::string> read_as_owner(const CopyFile& step) {
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  ::getpwuid_r(step.owner, &pw, buf.data(), buf.size(), &found);
  if (!found) throw Error("uid " + std::to_string(step.owner) + " has no account");
  // S8: read with the owner's privileges only.
  auto child = run_as_user(
      pw.pw_uid, pw.pw_gid, [&](int out) { return read_in_child(step, out); }, step.max_bytes + 1,
      kTimeoutMs);
  if (child.status == 125)
    throw Error("cannot drop privileges to uid " + std::to_string(step.owner));
  if (child.output.empty()) throw Error("the reading process failed");
  char status = child.output.front();
  std::string body = child.output.substr(1);
  if (status == 'M') return std::nullopt;
  if (status != 'O') throw Error(body);
  if (body.size() > step.max_bytes)
    throw Error("it is larger than " + std::to_string(step.max_bytes) + " bytes");
  return body;
}

}  // namespace

/// Writes `body` as root into the lend directory, owned by QEMU's user, mode 0400.
static void write_for_qemu(SocketRun& run, const CopyFile& step, const std::string& what,
                           const std::string& body);

void run_step(SocketRun& run, const CopyFile& step) {
  auto what = step.content ? "cannot write " + step.target : "cannot copy " + step.source();
  run.name_in_lend_dir(step.target, what);
  if (step.content) return write_for_qemu(run, step, what, *step.content);
  auto read = attempt([&] { return read_as_owner(step); });
  if (!read) {
    if (!step.optional) throw Error(what + ": " + read.what(), read.error->err());
    // An optional file the owner's side cannot deliver does not cost the socket.
    log_warning(run.tx.journal().domain + ": " + run.socket + ": " + what + ": " + read.what() +
                " (optional file skipped)");
    return;
  }
  const auto& body = *read.value;
  if (!body) {
    if (step.optional) {
      log_info(run.socket + ": optional file " + step.source() + " does not exist; not copied");
      return;
    }
    throw Error(what + ": it does not exist");
  }
  write_for_qemu(run, step, what, *body);
}

static void write_for_qemu(SocketRun& run, const CopyFile& step, const std::string& what,
                           const std::string& body) {
  auto e = run.entry<FileMade>(step.target);
  run.tx.record(e);
  auto name = base_name(step.target);
  // O_EXCL|O_NOFOLLOW in the root-only lend directory: a fresh file, never someone else's.
  Fd out(::openat(run.lend_dir.get(), name.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400));
  if (!out) throw_errno(what + ": cannot create " + step.target);
  std::size_t done = 0;
  while (done < body.size()) {
    auto n =
        retry_eintr([&] { return ::write(out.get(), body.data() + done, body.size() - done); });
    if (n <= 0) throw_errno(what + ": cannot write " + step.target);
    done += static_cast<std::size_t>(n);
  }
  // Safe: acts on the fd of the file just created with O_EXCL, never on a path.
  if (::fchown(out.get(), step.qemu_uid, run.qemu_gid) != 0 || ::fchmod(out.get(), 0400) != 0)
    throw_errno(what + ": cannot hand " + step.target + " to uid " + std::to_string(step.qemu_uid));
}

}  // namespace sockhook
