#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <string_view>
#include <vector>

#include "sys/fd.hpp"

namespace sockhook {

/// A msghdr over `iovlen` buffers at `iov`, with `control_size` bytes of room for control
/// messages at `control` (none if 0).
inline msghdr message_header(iovec* iov, std::size_t iovlen, void* control,
                             std::size_t control_size) {
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = iovlen;
  msg.msg_control = control_size ? control : nullptr;
  msg.msg_controllen = control_size;
  return msg;
}

/// Sends `bytes` in one sendmsg, with one SOL_SOCKET control message of `type` carrying `size`
/// bytes of `data` (descriptors for SCM_RIGHTS, a ucred for SCM_CREDENTIALS; none if `size` is
/// 0). Returns what sendmsg returns.
ssize_t send_with_control(int fd, std::string_view bytes, int type, const void* data,
                          std::size_t size, int flags);

/// Takes ownership of the descriptors that the SCM_RIGHTS control message `c` carries (the
/// kernel installed them in this process), appending them to `out`.
void take_rights(const cmsghdr& c, std::vector<Fd>& out);

}  // namespace sockhook
