#include "sys/file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "base/error.hpp"

namespace sockhook {

std::string read_all(const Fd& fd, std::size_t max_bytes) {
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = retry_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
    if (n < 0) throw_errno("cannot read");
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes)
      throw Error("it is larger than " + std::to_string(max_bytes) + " bytes");
  }
  return out;
}

std::string read_file(const std::string& path, std::size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) throw_errno("cannot open " + path);
  return in_context("cannot read " + path, [&] { return read_all(fd, max_bytes); });
}

std::optional<std::string> self_exe_path() {
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof buf);
  if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buf) return std::nullopt;
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string sockhook_program(const std::string& name, const std::string& self_exe) {
  std::string exe = self_exe;
  // The default names the running binary through /proc: its directory is the real one's.
  if (exe == "/proc/self/exe")
    if (auto real = self_exe_path()) exe = *real;
  auto slash = exe.rfind('/');
  auto beside = (slash == std::string::npos ? std::string(".") : exe.substr(0, slash)) + "/" + name;
  if (::access(beside.c_str(), X_OK) == 0) return beside;
  return std::string(SOCKHOOK_BIN_DIR) + "/" + name;
}

std::optional<std::string> try_read_file(const std::string& path, std::size_t max_bytes) {
  return value_or_none([&] { return read_file(path, max_bytes); });
}

std::vector<std::string> list_directory(const Fd& dir) {
  // A duplicate, so that the caller's fd keeps its own offset and stays usable.
  Fd copy(::openat(dir.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!copy) throw_errno("cannot open directory");
  Dir d(::fdopendir(copy.get()));
  if (!d) throw_errno("cannot read directory");
  copy.release();  // owned by `d` now
  std::vector<std::string> names;
  while (auto* e = ::readdir(d.get())) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  std::sort(names.begin(), names.end());
  return names;
}

struct stat fstat_or_throw(const Fd& fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_errno("cannot stat " + what);
  return st;
}

void write_file_atomic(const Fd& dir, const std::string& name, const std::string& data,
                       mode_t mode) {
  std::string tmp = "." + name + ".tmp" + std::to_string(::getpid());
  // O_EXCL|O_NOFOLLOW: never write through something planted under the temp name.
  ::unlinkat(dir.get(), tmp.c_str(), 0);
  Fd fd(
      ::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) throw_errno("cannot create " + tmp);
  std::size_t done = 0;
  while (done < data.size()) {
    auto n = retry_eintr([&] { return ::write(fd.get(), data.data() + done, data.size() - done); });
    if (n < 0) {
      int err = errno;
      ::unlinkat(dir.get(), tmp.c_str(), 0);
      throw_errno("cannot write " + tmp, err);
    }
    done += static_cast<std::size_t>(n);
  }
  // Safe: on the fd of the temp file this function created with O_EXCL.
  if (::fchmod(fd.get(), mode) != 0 || ::fsync(fd.get()) != 0) {
    int err = errno;
    ::unlinkat(dir.get(), tmp.c_str(), 0);
    throw_errno("cannot sync " + tmp, err);
  }
  if (::renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) {
    int err = errno;
    ::unlinkat(dir.get(), tmp.c_str(), 0);
    throw_errno("cannot rename " + tmp + " to " + name, err);
  }
  // The rename itself must survive a crash too.
  ::fsync(dir.get());
}

}  // namespace sockhook
