#include "base/error.hpp"

#include <cerrno>
#include <cstring>

namespace sockhook {

Error::Error(const std::string& what, int err) : std::runtime_error(what), err_(err) {}

Error Error::with_context(const std::string& context) const {
  return Error(context + ": " + what(), err_);
}

void throw_errno(const std::string& what) { throw_errno(what, errno); }

void throw_errno(const std::string& what, int err) {
  throw Error(what + ": " + std::strerror(err), err);
}

}  // namespace sockhook
