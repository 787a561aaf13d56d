#include "sys/socket.hpp"

#include <sys/socket.h>

#include <cstring>
#include <vector>

namespace sockhook {

ssize_t send_with_control(int fd, std::string_view bytes, int type, const void* data,
                          std::size_t size, int flags) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  std::vector<char> control(CMSG_SPACE(size));
  auto msg = message_header(&iov, 1, control.data(), size > 0 ? control.size() : 0);
  if (size > 0) {
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(size);
    std::memcpy(CMSG_DATA(c), data, size);
  }
  return ::sendmsg(fd, &msg, flags);
}

void take_rights(const cmsghdr& c, std::vector<Fd>& out) {
  const size_t count = (c.cmsg_len - CMSG_LEN(0)) / sizeof(int);
  out.reserve(out.size() + count);
  for (size_t k = 0; k < count; ++k) {
    int fd;
    std::memcpy(&fd, CMSG_DATA(&c) + k * sizeof(int), sizeof fd);
    out.emplace_back(fd);
  }
}

}  // namespace sockhook
