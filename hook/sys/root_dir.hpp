#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "sys/fd.hpp"

namespace sockhook {

// Directories only root may write: /run/sockhook, its state directory, the lend directories.

/// Opens the root-owned directory `path` (O_RDONLY|O_DIRECTORY), creating it with `mode` if
/// it is missing. No symlink is followed on the way. Refuses a directory that is not owned by
/// root or that group or others may write (and, for a 0700 `mode`, one that others may
/// enter). Throws Error.
/// `owners`: who may own it (root; `policy allow` in a test directory also its caller).
Fd ensure_root_dir(const std::string& path, mode_t mode, const std::vector<uid_t>& owners = {0});

/// The last component of a path.
std::string base_name(const std::string& path);
/// Everything before the last '/'.
std::string dir_name(const std::string& path);

}  // namespace sockhook
