#include "companion_file.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "error.hpp"
#include "lend_dir.hpp"
#include "log.hpp"
#include "root_dir.hpp"
#include "sys/creds.hpp"
#include "sys/file.hpp"

namespace sockhook {
namespace {

constexpr int kTimeoutMs = 5000;

/// Where the child starts resolving, and what lies beneath it.
struct Location {
  std::string base;
  std::string relative;
};

Location locate(const std::string& source, const struct passwd& pw) {
  std::string home = pw.pw_dir ? pw.pw_dir : "";
  auto runtime = "/run/user/" + std::to_string(pw.pw_uid);
  for (const auto& base : {home, runtime})
    if (!base.empty() && base != "/" && source.starts_with(base + "/"))
      return {base, source.substr(base.size() + 1)};
  return {"/", source.substr(1)};
}

/// Runs in the child, as the owner: writes 'O' and the content, or 'E' and a reason.
int read_in_child(const Location& where, std::size_t max_bytes, int out) {
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
  // The base (home or runtime directory) is named by the password database; beneath it, no
  // symlink is followed, so the owner cannot point us at a file only root could read (and as
  // the owner we could not read it anyway).
  Fd base(::open(where.base.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!base) return reply(errno == ENOENT ? 'M' : 'E', std::strerror(errno));
  Fd fd(openat2_fd(base.get(), where.relative, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS));
  if (!fd) {
    int err = errno;
    if (err == ENOENT) return reply('M', "it does not exist");
    if (err == ELOOP) return reply('E', "a component of the path is a symbolic link");
    return reply('E', std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return reply('E', std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return reply('E', "not a regular file");
  try {
    return reply('O', read_all(fd, max_bytes));
  } catch (const Error& e) {
    return reply('E', e.what());
  }
}

}  // namespace

/// Writes `body` as root into the lend directory, owned by QEMU's user, mode 0400.
static void write_for_qemu(SocketRun& run, const CopyFile& step, const std::string& what,
                           const std::string& body);

void copy_file(SocketRun& run, const CopyFile& step) {
  auto what = step.content ? "cannot write " + step.target : "cannot copy " + step.source;
  if (!run.lend_dir || dir_name(step.target) != run.lend_dir_path)
    throw Error(what + ": the target " + step.target + " is not in the lend directory");
  if (step.content) return write_for_qemu(run, step, what, *step.content);
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  ::getpwuid_r(step.owner, &pw, buf.data(), buf.size(), &found);
  if (!found) throw Error(what + ": uid " + std::to_string(step.owner) + " has no account");
  auto where = locate(step.source, pw);
  // S8: read with the owner's privileges only.
  auto child = run_as_user(
      pw.pw_uid, pw.pw_gid, [&](int out) { return read_in_child(where, step.max_bytes, out); },
      step.max_bytes + 1, kTimeoutMs);
  if (child.status == 125)
    throw Error(what + ": cannot drop privileges to uid " + std::to_string(step.owner));
  if (child.output.empty()) throw Error(what + ": the reading process failed");
  char status = child.output.front();
  std::string body = child.output.substr(1);
  if (status == 'M') {
    if (step.optional) {
      log_info(run.socket + ": optional file " + step.source + " does not exist; not copied");
      return;
    }
    throw Error(what + ": it does not exist");
  }
  if (status != 'O') throw Error(what + ": " + body);
  if (body.size() > step.max_bytes)
    throw Error(what + ": it is larger than " + std::to_string(step.max_bytes) + " bytes");
  write_for_qemu(run, step, what, body);
}

static void write_for_qemu(SocketRun& run, const CopyFile& step, const std::string& what,
                           const std::string& body) {
  auto e = run.entry(EntryKind::kFile, step.target);
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
