#pragma once

#include <dirent.h>

#include <cerrno>
#include <memory>
#include <string>
#include <utility>

namespace sockhook {

/// An owned file descriptor. Move-only; closes on destruction. There is deliberately no
/// implicit conversion to int: every use of the raw number is visible as `.get()`.
class Fd {
 public:
  Fd() = default;
  /// Takes ownership of `fd` (which may be -1).
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  /// The raw descriptor, still owned by this object.
  int get() const { return fd_; }
  /// True if this holds a descriptor.
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  /// Gives up ownership and returns the raw descriptor.
  int release() { return std::exchange(fd_, -1); }
  /// Closes the current descriptor (if any) and takes `fd`.
  void reset(int fd = -1);

  /// "/proc/self/fd/N": lets path-only APIs (acl_set_file, chmod, setxattr) act on exactly
  /// this inode, without resolving a user-controlled path again.
  std::string proc_path() const;

 private:
  int fd_ = -1;
};

/// Closes a DIR stream (for std::unique_ptr).
struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
/// An owned directory stream; empty if opening failed.
using Dir = std::unique_ptr<DIR, DirCloser>;

/// Calls `f` until it stops failing with EINTR; returns its last result.
template <typename F>
auto retry_eintr(F&& f) {
  decltype(f()) r;
  do {
    r = f();
  } while (r == -1 && errno == EINTR);
  return r;
}

}  // namespace sockhook
