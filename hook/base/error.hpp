#pragma once

#include <stdexcept>
#include <string>

namespace sockhook {

/// The one error type below main: a message, and the errno that caused it (0 if none).
/// Layers add context with `with_context`; only main and the hook entry catch.
class Error : public std::runtime_error {
 public:
  /// An error with a message and no errno.
  explicit Error(const std::string& what, int err = 0);

  /// The errno that caused this error, or 0.
  int err() const { return err_; }

  /// A new error whose message is "context: <this message>", same errno.
  Error with_context(const std::string& context) const;

 private:
  int err_;
};

/// Throws an Error whose message is `what: strerror(errno)`, keeping errno.
[[noreturn]] void throw_errno(const std::string& what);

/// Throws an Error whose message is `what: strerror(err)`.
[[noreturn]] void throw_errno(const std::string& what, int err);

}  // namespace sockhook
