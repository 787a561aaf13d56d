#include "lend/lend_dir.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <unistd.h>

#include <cstring>

#include "base/error.hpp"
#include "sys/acl.hpp"
#include "sys/file.hpp"
#include "sys/resolve.hpp"
#include "sys/root_dir.hpp"
#include "sys/trust.hpp"

namespace sockhook {

Fd make_lend_dir(const Fd& lend_root, const std::string& name, uid_t qemu_uid) {
  // Safe: beneath the fd of the root-owned lend root, which nobody else can write; 0700.
  bool created = ::mkdirat(lend_root.get(), name.c_str(), 0700) == 0;
  if (!created && errno != EEXIST) throw_errno("mkdir");
  // The lend root is root-owned and not writable by anyone else, so what is at `name` was
  // made by root; O_NOFOLLOW and the checks below are defence in depth.
  Fd dir(::openat(lend_root.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) throw_errno("open");
  auto st = fstat_or_throw(dir, name);
  if (st.st_uid != 0) throw Error("it exists and is not owned by root");
  if (!created && !list_directory(dir).empty())
    throw Error("it exists and is not empty (hint: sockhook cleanup)");
  // Safe: on the fd of the root-owned directory just checked, narrowing it to root alone.
  if (::fchmod(dir.get(), 0700) != 0) throw_errno("chmod");
  // Traversal for QEMU's user only: it may open the names it is told, not list or write.
  if (!acl_allows(dir.proc_path(), fstat_or_throw(dir, name), qemu_uid, {static_cast<gid_t>(-1)},
                  1))
    // Safe: through /proc/self/fd of the verified directory; traversal (--x) only.
    acl_grant_user(dir.proc_path(), qemu_uid, 1);
  return dir;
}

Fd open_lend_dir(const std::string& path) {
  Fd dir(openat2_fd(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                    RESOLVE_NO_SYMLINKS));
  if (!dir) return dir;
  struct stat st {};
  if (::fstat(dir.get(), &st) != 0 || trust_problem(st)) return Fd();
  return dir;
}

Fd create_placeholder(const Fd& dir, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    throw Error("'" + name + "' is not a plain file name");
  // Safe: a fresh file (O_EXCL, no symlink) in the root-only lend directory.
  Fd file(::openat(dir.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   0600));
  if (!file) throw_errno("cannot create " + name);
  Fd path(::openat(dir.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!path) throw_errno("cannot open " + name);
  return path;
}

UndoProblem remove_from_lend_dir(const std::string& path, int flags) {
  Fd dir = open_lend_dir(dir_name(path));
  if (!dir) return std::nullopt;
  auto name = base_name(path);
  // Safe: only root can write the lend directory, so whatever has this name there is ours;
  // rmdir removes only an empty directory.
  if (::unlinkat(dir.get(), name.c_str(), flags) != 0 && errno != ENOENT)
    return "cannot remove " + path + ": " + std::strerror(errno);
  return std::nullopt;
}

UndoProblem undo(const FileMade& e, const Undoing&) { return remove_from_lend_dir(e.path, 0); }

UndoProblem undo(const DirMade& e, const Undoing&) {
  return remove_from_lend_dir(e.path, AT_REMOVEDIR);
}

std::optional<InodeId> source_inode_now(const JournalSocket& s) {
  for (const auto& step : s.steps) {
    if (const auto* v = std::get_if<VerifySource>(&step))
      return value_or_none([&] {
        return inode_of(
            resolve_source({v->runtime_dir, v->relative, v->owner, 0, std::nullopt}).st);
      });
  }
  return std::nullopt;
}

}  // namespace sockhook
