#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string_view>

namespace sockhook {

/// Sends `bytes` in one sendmsg, with one SOL_SOCKET control message of `type` carrying `size`
/// bytes of `data` (descriptors for SCM_RIGHTS, a ucred for SCM_CREDENTIALS; none if `size` is
/// 0). Returns what sendmsg returns.
ssize_t send_with_control(int fd, std::string_view bytes, int type, const void* data,
                          std::size_t size, int flags);

}  // namespace sockhook
