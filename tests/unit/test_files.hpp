#pragma once

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "sys/fd.hpp"

/// Ends the current test case (or SUBCASE) with a message saying why, unless it runs as root.
/// A macro because it must return from the caller.
#define SKIP_UNLESS_ROOT(why)        \
  do {                               \
    if (::geteuid() != 0) {          \
      MESSAGE("skipped: " << (why)); \
      return;                        \
    }                                \
  } while (false)

namespace sockhook {

/// The whole text of `path`, which must be readable.
inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A private temporary directory for one test, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(mode_t mode = 0700) {
    char name[] = "/tmp/sockhook-test-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
    ::chmod(name, mode);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// Writes `text` to `name` with `mode` and returns its path.
  std::filesystem::path write(const std::string& name, const std::string& text,
                              mode_t mode = 0644) const {
    auto p = path / name;
    std::ofstream(p) << text;
    REQUIRE(::chmod(p.c_str(), mode) == 0);
    return p;
  }
};

/// A Unix stream socket bound at `path` (not listening), closed but not unlinked when it goes.
inline Fd bound_socket(const std::filesystem::path& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.native().size() < sizeof addr.sun_path);
  path.native().copy(addr.sun_path, path.native().size());
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

}  // namespace sockhook
