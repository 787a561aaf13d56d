#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "sys/fd.hpp"

namespace sockhook {

/// Reads everything from `fd`, failing with Error if it holds more than `max_bytes`.
std::string read_all(const Fd& fd, std::size_t max_bytes);

/// Reads a whole file by path (O_NOFOLLOW), failing if larger than `max_bytes`.
std::string read_file(const std::string& path, std::size_t max_bytes);

/// read_file for a file that may be absent: nullopt if it cannot be read, for any reason.
std::optional<std::string> try_read_file(const std::string& path, std::size_t max_bytes);

/// The path of the running binary (/proc/self/exe read now), or nullopt if it cannot be read.
std::optional<std::string> self_exe_path();

/// Where sockhook's helper program `name` (a holder) is: beside the running binary `self_exe`
/// when it is there (a build tree, the package's /usr/bin), else in the bindir sockhook was
/// built for. install.sh's hook is a copy of sockhook in /etc/libvirt/hooks/qemu.d, beside
/// which nothing else may be: libvirt runs every executable there as a hook.
std::string sockhook_program(const std::string& name,
                             const std::string& self_exe = "/proc/self/exe");

/// The names in a directory, without "." and "..", sorted.
std::vector<std::string> list_directory(const Fd& dir);

/// fstat that throws Error.
struct stat fstat_or_throw(const Fd& fd, const std::string& what);

/// Writes `data` to `dir`/`name` atomically: a temp file, fsync, rename, fsync of the
/// directory. The file gets `mode`. Used for the journal and the policy.
void write_file_atomic(const Fd& dir, const std::string& name, const std::string& data,
                       mode_t mode);

}  // namespace sockhook
