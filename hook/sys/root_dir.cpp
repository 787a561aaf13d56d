#include "sys/root_dir.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <unistd.h>

#include "base/error.hpp"
#include "sys/file.hpp"
#include "sys/resolve.hpp"
#include "sys/trust.hpp"

namespace sockhook {
namespace {

/// A root-owned directory that nobody else can write into; `private_dir`: nobody else can
/// enter it either.
void check_root_dir(const struct stat& st, const std::string& path, bool private_dir,
                    const std::vector<uid_t>& owners) {
  if (!S_ISDIR(st.st_mode)) throw Error(path + " is not a directory");
  require_trusted(st, path, private_dir, owners);
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

Fd ensure_root_dir(const std::string& path, mode_t mode, const std::vector<uid_t>& owners) {
  auto parent_path = dir_name(path);
  auto name = base_name(path);
  // The parent (/run) belongs to root; still, never follow a symlink on the way.
  Fd parent(
      openat2_fd(AT_FDCWD, parent_path, O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_SYMLINKS));
  if (!parent) throw_errno("cannot open " + parent_path);
  // Safe: beneath the parent's fd (reached without symlinks); checked as trusted below.
  bool created = ::mkdirat(parent.get(), name.c_str(), mode) == 0;
  if (!created && errno != EEXIST) throw_errno("cannot create " + path);
  Fd dir(openat2_fd(parent.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS));
  if (!dir) throw_errno("cannot open " + path);
  // The umask may have narrowed the mode; set it exactly on what we just made.
  if (created && ::fchmod(dir.get(), mode) != 0) throw_errno("cannot chmod " + path);
  check_root_dir(fstat_or_throw(dir, path), path, (mode & 077) == 0, owners);
  return dir;
}

}  // namespace sockhook
