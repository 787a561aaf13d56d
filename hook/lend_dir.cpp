#include "lend_dir.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <unistd.h>

#include "error.hpp"
#include "sys/acl.hpp"
#include "sys/file.hpp"
#include "sys/resolve.hpp"

namespace sockhook {
namespace {

/// A root-owned directory that nobody else can write into; `private_dir`: nobody else can
/// enter it either.
void check_root_dir(const struct stat& st, const std::string& path, bool private_dir) {
  if (!S_ISDIR(st.st_mode)) throw Error(path + " is not a directory");
  if (st.st_uid != 0) throw Error(path + " is not owned by root");
  if (st.st_mode & 022) throw Error(path + " is writable by group or others");
  if (private_dir && (st.st_mode & 077)) throw Error(path + " is accessible to group or others");
}

}  // namespace

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string dir_name(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Fd ensure_root_dir(const std::string& path, mode_t mode) {
  auto parent_path = dir_name(path);
  auto name = base_name(path);
  // The parent (/run) belongs to root; still, never follow a symlink on the way.
  Fd parent(
      openat2_raw(AT_FDCWD, parent_path, O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_SYMLINKS));
  if (!parent) throw_errno("cannot open " + parent_path);
  bool created = ::mkdirat(parent.get(), name.c_str(), mode) == 0;
  if (!created && errno != EEXIST) throw_errno("cannot create " + path);
  Fd dir(openat2_raw(parent.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                     RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS));
  if (!dir) throw_errno("cannot open " + path);
  // The umask may have narrowed the mode; set it exactly on what we just made.
  if (created && ::fchmod(dir.get(), mode) != 0) throw_errno("cannot chmod " + path);
  check_root_dir(fstat_or_throw(dir, path), path, (mode & 077) == 0);
  return dir;
}

Fd make_lend_dir(const Fd& lend_root, const std::string& name, uid_t qemu_uid, bool* created) {
  *created = ::mkdirat(lend_root.get(), name.c_str(), 0700) == 0;
  if (!*created && errno != EEXIST) throw_errno("cannot create the lend directory");
  // The lend root is root-owned and not writable by anyone else, so what is at `name` was
  // made by root; O_NOFOLLOW and the checks below are defence in depth.
  Fd dir(::openat(lend_root.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) throw_errno("cannot open the lend directory");
  auto st = fstat_or_throw(dir, "the lend directory");
  if (st.st_uid != 0) throw Error("the lend directory exists and is not owned by root");
  if (!*created && !list_directory(dir).empty())
    throw Error("the lend directory exists and is not empty (hint: sockhook cleanup)");
  if (::fchmod(dir.get(), 0700) != 0) throw_errno("cannot chmod the lend directory");
  // Traversal for QEMU's user only: it may open the names it is told, not list or write.
  if (!acl_allows(dir.proc_path(), fstat_or_throw(dir, "the lend directory"), qemu_uid,
                  {static_cast<gid_t>(-1)}, 1))
    acl_grant_user(dir.proc_path(), qemu_uid, 1);
  return dir;
}

Fd open_lend_dir(const std::string& path) {
  Fd dir(openat2_raw(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                     RESOLVE_NO_SYMLINKS));
  if (!dir) return dir;
  struct stat st {};
  if (::fstat(dir.get(), &st) != 0 || st.st_uid != 0 || (st.st_mode & 022)) return Fd();
  return dir;
}

Fd create_placeholder(const Fd& dir, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    throw Error("'" + name + "' is not a plain file name");
  Fd file(::openat(dir.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   0600));
  if (!file) throw_errno("cannot create " + name);
  Fd path(::openat(dir.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!path) throw_errno("cannot open " + name);
  return path;
}

}  // namespace sockhook
