#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "host/proc.hpp"
#include "lend/lend_proxy.hpp"
#include "proxy/relay.hpp"
#include "proxy/spawn.hpp"
#include "sys/socket.hpp"

namespace sockhook {
namespace {

using namespace std::chrono_literals;

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/sockhook-proxy-test-XXXXXX";
    REQUIRE(mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

sockaddr_un address_of(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

/// A unix stream socket that listens at `path` (`listening`) or is connected to it.
Fd unix_socket(const std::string& path, bool listening) {
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  const auto addr = address_of(path);
  const auto* sa = reinterpret_cast<const sockaddr*>(&addr);
  if (listening) {
    REQUIRE(bind(fd.get(), sa, sizeof addr) == 0);
    REQUIRE(listen(fd.get(), SOMAXCONN) == 0);
  } else {
    REQUIRE(connect(fd.get(), sa, sizeof addr) == 0);
  }
  return fd;
}

Fd listen_at(const std::string& path) { return unix_socket(path, true); }
/// How long a test waits for something it expects to happen (a connection, bytes, EOF, an
/// exit): ended at once by the event, so only a failing test waits this long, and long enough
/// that a loaded machine never fails a test that works.
constexpr int kPatienceMs = 30000;

Fd connect_to(const std::string& path) { return unix_socket(path, false); }

bool wait_for(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  return retry_eintr([&] { return poll(&p, 1, timeout_ms); }) > 0;
}

Fd accept_within(const Fd& listener, int timeout_ms = kPatienceMs) {
  if (!wait_for(listener.get(), POLLIN, timeout_ms)) return Fd();
  return Fd(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
}

void set_nonblocking(const Fd& fd) {
  REQUIRE(fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) | O_NONBLOCK) == 0);
}

/// Sends `bytes` with `fds` attached in one sendmsg; true if all bytes went.
bool send_with_fds(int fd, const std::string& bytes, const std::vector<int>& fds, int flags = 0) {
  return send_with_control(fd, bytes, SCM_RIGHTS, fds.data(), sizeof(int) * fds.size(),
                           MSG_NOSIGNAL | flags) == static_cast<ssize_t>(bytes.size());
}

/// What one recvmsg returned.
struct Received {
  ssize_t n = -1;  // -1: nothing within the timeout (or an error)
  std::string bytes;
  std::vector<Fd> fds;
  bool ctrunc = false;
  bool creds = false;
  ucred cred{};
};

Received receive(int fd, int timeout_ms = kPatienceMs, size_t max = 65536) {
  Received r;
  if (!wait_for(fd, POLLIN, timeout_ms)) return r;
  std::string buffer(max, '\0');
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253) + CMSG_SPACE(sizeof(ucred))];
  auto msg = message_header(&iov, 1, control, sizeof control);
  r.n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (r.n < 0) return r;
  r.bytes.assign(buffer.data(), static_cast<size_t>(r.n));
  r.ctrunc = (msg.msg_flags & MSG_CTRUNC) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_RIGHTS) {
      take_rights(*c, r.fds);
    } else if (c->cmsg_type == SCM_CREDENTIALS) {
      r.creds = true;
      std::memcpy(&r.cred, CMSG_DATA(c), sizeof r.cred);
    }
  }
  return r;
}

/// Reads exactly `size` bytes as a frame-by-frame reader does (several reads if need be),
/// collecting the descriptors that arrive on the way.
Received receive_exactly(int fd, size_t size) {
  Received all;
  while (all.bytes.size() < size) {
    auto r = receive(fd, kPatienceMs, size - all.bytes.size());
    if (r.n <= 0) break;
    all.bytes += r.bytes;
    all.ctrunc |= r.ctrunc;
    for (auto& f : r.fds) all.fds.push_back(std::move(f));
  }
  all.n = static_cast<ssize_t>(all.bytes.size());
  return all;
}

/// Reads exactly `size` bytes (fewer on EOF or after the timeout).
std::string read_bytes(int fd, size_t size, int timeout_ms = kPatienceMs) {
  std::string out;
  while (out.size() < size) {
    auto r = receive(fd, timeout_ms, size - out.size());
    if (r.n <= 0) break;
    out += r.bytes;
  }
  return out;
}

/// Sends `bytes` (no descriptors) from `from` and returns what `to` then reads of that length.
std::string relayed(const Fd& from, const Fd& to, const std::string& bytes) {
  REQUIRE(send_with_fds(from.get(), bytes, {}));
  return read_bytes(to.get(), bytes.size());
}

/// True if the next read on `fd` reports EOF (or a reset) within the timeout.
bool gets_eof(int fd, int timeout_ms = kPatienceMs) {
  auto r = receive(fd, timeout_ms, 1);
  return r.n == 0 || (r.n < 0 && errno == ECONNRESET);
}

Fd make_memfd(const std::string& content) {
  Fd fd(memfd_create("proxy-test", MFD_CLOEXEC));
  REQUIRE(fd.valid());
  REQUIRE(write(fd.get(), content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  return fd;
}

std::string file_content(const Fd& fd) {
  char buffer[256];
  const ssize_t n = pread(fd.get(), buffer, sizeof buffer, 0);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

ino_t inode_of(int fd) {
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  return st.st_ino;
}

/// A relay in a forked child, as in production: a separate process that holds nothing but
/// the listening socket.
class ProxyChild {
 public:
  ProxyChild(const std::string& listen_path, const ProxyOptions& options,
             const std::function<void()>& before_run = {}) {
    Fd listener = listen_at(listen_path);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      if (dup2(listener.get(), 3) < 0) _exit(120);
      close_range(4, ~0U, 0);
      if (before_run) before_run();
      int rc = 121;
      try {
        rc = run_proxy(Fd(3), options);
      } catch (const Error&) {
        rc = 122;
      }
      _exit(rc);
    }
  }
  ~ProxyChild() { stop(); }
  ProxyChild(const ProxyChild&) = delete;
  ProxyChild& operator=(const ProxyChild&) = delete;

  pid_t pid() const { return pid_; }

  /// SIGTERM, then the exit status (-1 if it had to be killed).
  int stop() {
    if (pid_ <= 0) return status_;
    kill(pid_, SIGTERM);
    for (int i = 0; i < kPatienceMs / 10; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return status_;
      }
      std::this_thread::sleep_for(10ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return status_;
  }

  /// How many descriptors the proxy holds now.
  size_t fd_count() const {
    size_t count = 0;
    for ([[maybe_unused]] auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd"))
      ++count;
    return count;
  }

  /// The descriptor count once it has not changed for half a second (open connections
  /// being closed).
  size_t settled_fd_count() const {
    size_t count = fd_count();
    for (int same = 0, i = 0; same < 25 && i < kPatienceMs / 20; ++i) {
      std::this_thread::sleep_for(20ms);
      const size_t now = fd_count();
      same = now == count ? same + 1 : 0;
      count = now;
    }
    return count;
  }

  /// Waits until the proxy holds `expected` descriptors; returns the last count seen.
  size_t fd_count_settles_at(size_t expected) const {
    size_t count = fd_count();
    for (int i = 0; i < kPatienceMs / 10 && count != expected; ++i) {
      std::this_thread::sleep_for(10ms);
      count = fd_count();
    }
    return count;
  }

  /// VmRSS in KiB.
  long rss_kib() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

/// A proxy at dir/proxy relaying to dir/server, and the server's listener.
struct Setup {
  TempDir dir;
  Fd server_listener;
  ProxyOptions options;
  std::unique_ptr<ProxyChild> proxy;

  explicit Setup(ProxyLimits limits = {}, bool with_server = true,
                 const std::function<void()>& before_run = {}) {
    options.connect_path = dir / "server";
    options.peer_uid = getuid();
    options.limits = limits;
    if (with_server) server_listener = listen_at(dir / "server");
    proxy = std::make_unique<ProxyChild>(dir / "proxy", options, before_run);
  }

  /// A client through the proxy and the server's end of its connection.
  std::pair<Fd, Fd> connect_pair() {
    Fd client = connect_to(dir / "proxy");
    Fd server = accept_within(server_listener);
    REQUIRE(server.valid());
    return {std::move(client), std::move(server)};
  }

  /// What the server reads when a new client sends `bytes` through the proxy.
  std::string relayed_from_new_client(const std::string& bytes) {
    auto [client, server] = connect_pair();
    return relayed(client, server, bytes);
  }
};

/// Moves `data` from `from` to `to` with both ends non-blocking, reading as it writes (the
/// proxy's small buffers would otherwise deadlock a single thread); returns what arrived.
std::string transfer(const Fd& from, const Fd& to, const std::string& data) {
  set_nonblocking(from);
  std::string got;
  size_t sent = 0;
  std::vector<char> buffer(65536);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (got.size() < data.size() && std::chrono::steady_clock::now() < deadline) {
    if (sent < data.size()) {
      const ssize_t n = send(from.get(), data.data() + sent,
                             std::min<size_t>(data.size() - sent, 100000), MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
    }
    if (wait_for(to.get(), POLLIN, sent < data.size() ? 0 : 100)) {
      const ssize_t n = recv(to.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n > 0) got.append(buffer.data(), static_cast<size_t>(n));
      if (n == 0) break;
    }
  }
  return got;
}

std::string pattern(size_t size, unsigned seed) {
  std::string data(size, '\0');
  unsigned x = seed;
  for (auto& c : data) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 16);
  }
  return data;
}

}  // namespace

TEST_CASE("The proxy relays bytes both ways and passes a half-close on") {
  Setup s;
  auto [client, server] = s.connect_pair();
  CHECK(relayed(client, server, "hello") == "hello");
  CHECK(relayed(server, client, "world") == "world");

  // The client stops writing: the server sees EOF and can still answer.
  REQUIRE(shutdown(client.get(), SHUT_WR) == 0);
  CHECK(gets_eof(server.get()));
  CHECK(relayed(server, client, "late") == "late");
  server.reset();
  CHECK(gets_eof(client.get()));
}

TEST_CASE("Megabytes pass intact through a buffer smaller than one write") {
  // 5000 bytes, not a power of two: the ring buffer wraps at odd places.
  Setup s(ProxyLimits{.max_queued_bytes = 5000});
  auto [client, server] = s.connect_pair();
  const auto up = pattern(3 << 20, 1);
  CHECK(transfer(client, server, up) == up);
  const auto down = pattern(3 << 20, 2);
  CHECK(transfer(server, client, down) == down);
}

TEST_CASE("A file descriptor sent through the proxy arrives and works") {
  Setup s;
  auto [client, server] = s.connect_pair();

  SUBCASE("from the client to the server") {
    Fd memfd = make_memfd("secret");
    REQUIRE(send_with_fds(client.get(), "x", {memfd.get()}));
    auto r = receive(server.get());
    CHECK(r.bytes == "x");
    REQUIRE(r.fds.size() == 1);
    CHECK(file_content(r.fds[0]) == "secret");
    CHECK(inode_of(r.fds[0].get()) == inode_of(memfd.get()));
  }
  SUBCASE("from the server to the client") {
    int p[2];
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    Fd read_end(p[0]);
    Fd write_end(p[1]);
    REQUIRE(send_with_fds(server.get(), "y", {write_end.get()}));
    write_end.reset();
    auto r = receive(client.get());
    CHECK(r.bytes == "y");
    REQUIRE(r.fds.size() == 1);
    REQUIRE(write(r.fds[0].get(), "pong", 4) == 4);
    r.fds.clear();  // the last write end closes: the pipe reports EOF after "pong"
    char buffer[8];
    CHECK(read(read_end.get(), buffer, sizeof buffer) == 4);
    CHECK(std::string(buffer, 4) == "pong");
    CHECK(read(read_end.get(), buffer, sizeof buffer) == 0);
  }
}

TEST_CASE("A message with many descriptors arrives complete and in order") {
  size_t count = 0;
  SUBCASE("28, as PipeWire sends") { count = 28; }
  SUBCASE("253, the kernel's maximum") { count = 253; }
  Setup s;
  auto [client, server] = s.connect_pair();
  std::vector<Fd> files;
  std::vector<int> raw;
  for (size_t i = 0; i < count; ++i) {
    files.push_back(make_memfd(std::to_string(i)));
    raw.push_back(files.back().get());
  }
  REQUIRE(send_with_fds(client.get(), "batch", raw));
  // The proxy may deliver the message in two parts ("b" with the descriptors, then "atch"):
  // what matters is that the descriptors come with its first byte.
  auto r = receive_exactly(server.get(), 5);
  CHECK(r.bytes == "batch");
  CHECK_FALSE(r.ctrunc);
  REQUIRE(r.fds.size() == count);
  for (size_t i = 0; i < count; ++i) CHECK(file_content(r.fds[i]) == std::to_string(i));
}

TEST_CASE("The kernel ends a stream read right after the first write with descriptors") {
  // What the relay's placement rests on (proxy/relay.cpp, Relay::pump): a read glues fd-less
  // data onto the next write with descriptors and stops after it, so a read's descriptors
  // belong to a write that starts inside that read, and no read holds two such writes.
  int pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  Fd a(pair[0]);
  Fd b(pair[1]);
  Fd one = make_memfd("one");
  Fd two = make_memfd("two");
  REQUIRE(send_with_fds(a.get(), std::string(5000, 'p'), {}));
  REQUIRE(send_with_fds(a.get(), "first", {one.get()}));
  REQUIRE(send_with_fds(a.get(), "second", {two.get(), one.get()}));
  REQUIRE(send_with_fds(a.get(), "tail", {}));
  auto glued = receive(b.get());
  CHECK(glued.bytes == std::string(5000, 'p') + "first");
  REQUIRE(glued.fds.size() == 1);
  CHECK(file_content(glued.fds[0]) == "one");
  auto next = receive(b.get());
  CHECK(next.bytes == "second");
  CHECK(next.fds.size() == 2);
  auto tail = receive(b.get());
  CHECK(tail.bytes == "tail");
  CHECK(tail.fds.empty());
}

/// One write of a busy server: its bytes and, if any, the content of a memfd sent with them.
struct Write {
  std::string bytes;
  std::optional<std::string> memfd;
};

/// Sends `writes` from `server` while the proxy is stopped, so that they queue up together
/// and the proxy reads them at once, the way a busy server's messages arrive.
void queue_while_stopped(Setup& s, int server, const std::vector<Write>& writes) {
  REQUIRE(kill(s.proxy->pid(), SIGSTOP) == 0);
  for (const auto& w : writes) {
    if (w.memfd) {
      Fd memfd = make_memfd(*w.memfd);  // closed here; the message in flight holds the file
      REQUIRE(send_with_fds(server, w.bytes, {memfd.get()}));
    } else {
      REQUIRE(send_with_fds(server, w.bytes, {}));
    }
  }
  REQUIRE(kill(s.proxy->pid(), SIGCONT) == 0);
}

TEST_CASE("Descriptors glued to earlier data leave with the first byte of that read") {
  // The kernel glues fd-less data queued before a write with descriptors onto that write and
  // ends the read right after it: the proxy reads both at once (one read, whatever was queued
  // before) and sends the descriptors with the first byte it read, early and never late. Stop
  // the proxy so that a plain message and a message with a descriptor queue up together, the
  // way a busy server sends them; then the reverse order, where nothing may be early.
  Setup s;
  auto [client, server] = s.connect_pair();
  Fd earlier = make_memfd("first");
  REQUIRE(send_with_fds(server.get(), "x", {earlier.get()}));
  auto arrived = receive_exactly(client.get(), 1);
  REQUIRE(arrived.fds.size() == 1);
  for (int round = 0; round < 20; ++round) {
    const std::string plain(100 + static_cast<size_t>(round), 'p');
    queue_while_stopped(s, server.get(),
                        {{plain, std::nullopt}, {"with-fd", "frame " + std::to_string(round)}});

    auto first = receive_exactly(client.get(), plain.size());
    CHECK(first.bytes == plain);
    REQUIRE(first.fds.size() == 1);
    CHECK(file_content(first.fds[0]) == "frame " + std::to_string(round));
    auto second = receive_exactly(client.get(), 7);
    CHECK(second.bytes == "with-fd");
    CHECK(second.fds.empty());
  }
  // A write with descriptors first, then plain data: each read ends at the descriptors' write,
  // so the plain data that follows carries none.
  queue_while_stopped(s, server.get(),
                      {{"with-fd", "before plain"}, {std::string(300, 'q'), std::nullopt}});
  auto with = receive_exactly(client.get(), 7);
  CHECK(with.bytes == "with-fd");
  REQUIRE(with.fds.size() == 1);
  CHECK(file_content(with.fds[0]) == "before plain");
  auto after = receive_exactly(client.get(), 300);
  CHECK(after.bytes == std::string(300, 'q'));
  CHECK(after.fds.empty());
}

TEST_CASE("Descriptors of a long write queued behind data leave early, never late") {
  // A longer write with descriptors, glued to the data before it: its descriptors come with
  // the read's first byte, earlier than the write's own first byte, never later.
  Setup s;
  auto [client, server] = s.connect_pair();
  Fd arming = make_memfd("first");
  REQUIRE(send_with_fds(server.get(), "x", {arming.get()}));
  REQUIRE(receive_exactly(client.get(), 1).fds.size() == 1);
  for (int round = 0; round < 5; ++round) {
    const std::string plain(1000, 'p');
    const std::string long_write(300, 'w');
    queue_while_stopped(s, server.get(),
                        {{plain, std::nullopt}, {long_write, "long " + std::to_string(round)}});

    // The descriptor comes with a read that starts at or before the long write's first byte.
    auto first = receive_exactly(client.get(), plain.size() + 1);
    CHECK(first.bytes == plain + "w");
    REQUIRE(first.fds.size() == 1);
    CHECK(file_content(first.fds[0]) == "long " + std::to_string(round));
    CHECK(receive_exactly(client.get(), long_write.size() - 1).bytes == long_write.substr(1));
  }
}

TEST_CASE("Descriptors keep their byte position among the bytes") {
  // Chunks of varied sizes; every third one carries two fds that name the chunk. The
  // kernel delivers fds with the read that holds the first byte of their chunk; a relay
  // must not deliver them later than that, nor merge two batches.
  struct Chunk {
    size_t start;
    std::string bytes;
    std::vector<Fd> fds;
  };
  std::vector<Chunk> chunks;
  size_t position = 0;
  for (size_t k = 0; k < 60; ++k) {
    Chunk chunk{position, std::string(1 + (k * 37) % 150, static_cast<char>('a' + k % 26)), {}};
    if (k % 3 == 1) {
      chunk.fds.push_back(make_memfd(std::to_string(k)));
      chunk.fds.push_back(make_memfd(std::to_string(k) + "b"));
    }
    position += chunk.bytes.size();
    chunks.push_back(std::move(chunk));
  }

  auto check = [&](const Fd& sender, const Fd& receiver) {
    for (auto& chunk : chunks) {
      std::vector<int> raw;
      for (auto& fd : chunk.fds) raw.push_back(fd.get());
      REQUIRE(send_with_fds(sender.get(), chunk.bytes, raw));
    }
    std::string all;
    size_t next_batch = 1;  // index of the next chunk with fds
    while (all.size() < position) {
      auto r = receive(receiver.get());
      REQUIRE(r.n > 0);
      const size_t start = all.size();
      all += r.bytes;
      if (r.fds.empty()) continue;
      REQUIRE(next_batch < chunks.size());
      const auto& chunk = chunks[next_batch];
      INFO("batch of chunk " << next_batch << " at " << chunk.start << ", read [" << start << ", "
                             << all.size() << ")");
      CHECK(start <= chunk.start);
      CHECK(chunk.start < all.size());
      REQUIRE(r.fds.size() == 2);
      CHECK(file_content(r.fds[0]) == std::to_string(next_batch));
      CHECK(file_content(r.fds[1]) == std::to_string(next_batch) + "b");
      next_batch += 3;
    }
    CHECK(next_batch == 61);  // all 20 batches arrived
    std::string expected;
    for (auto& chunk : chunks) expected += chunk.bytes;
    CHECK(all == expected);
  };

  SUBCASE("through the proxy") {
    Setup s;
    auto [client, server] = s.connect_pair();
    check(client, server);
  }
  SUBCASE("directly (the kernel's own behaviour, for reference)") {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    Fd a(sv[0]);
    Fd b(sv[1]);
    check(a, b);
  }
}

TEST_CASE("A client that sends descriptors and leaves leaves no descriptor behind") {
  Setup s;
  {  // one full connection first, so that lazily opened things are open for the baseline
    auto [client, server] = s.connect_pair();
  }
  const size_t baseline = s.proxy->settled_fd_count();
  auto [client, server] = s.connect_pair();
  set_nonblocking(client);
  Fd a = make_memfd("a");
  Fd b = make_memfd("b");
  Fd c = make_memfd("c");
  size_t sent = 0;
  while (sent < 300 && send_with_fds(client.get(), "m", {a.get(), b.get(), c.get()})) ++sent;
  REQUIRE(sent > 10);
  client.reset();

  SUBCASE("the server still gets every byte and descriptor, then EOF") {
    size_t bytes = 0;
    size_t fds = 0;
    for (;;) {
      auto r = receive(server.get());
      REQUIRE(r.n >= 0);
      if (r.n == 0) break;
      bytes += r.bytes.size();
      fds += r.fds.size();
    }
    CHECK(bytes == sent);
    CHECK(fds == 3 * sent);
  }
  SUBCASE("the server leaves without reading") { server.reset(); }

  CHECK(s.proxy->fd_count_settles_at(baseline) == baseline);
}

TEST_CASE("A client with another uid is refused") {
  ProxyLimits limits;
  TempDir dir;
  Fd server_listener = listen_at(dir / "server");
  ProxyOptions options{dir / "server", getuid() + 1, limits, {}};
  ProxyChild proxy(dir / "proxy", options);
  Fd client = connect_to(dir / "proxy");
  CHECK(gets_eof(client.get()));
  CHECK_FALSE(wait_for(server_listener.get(), POLLIN, 200));  // no connection was made
}

TEST_CASE("A client with QEMU's uid outside the domain's cgroup is refused (S10)") {
  // This test's process is in no VM's cgroup: the right uid is not enough.
  for (bool kernel_pidfd : {true, false}) {
    CAPTURE(kernel_pidfd);
    TempDir dir;
    Fd server_listener = listen_at(dir / "server");
    ProxyOptions options{dir / "server", getuid(), {}, DomainCgroup{7, "/machine"}, kernel_pidfd};
    ProxyChild proxy(dir / "proxy", options);
    Fd client = connect_to(dir / "proxy");
    CHECK(gets_eof(client.get()));
    CHECK_FALSE(wait_for(server_listener.get(), POLLIN, 200));  // no connection was made
  }
}

TEST_CASE("read_socket_peer reads the connecting process's own cgroup") {
  std::ifstream own("/proc/self/cgroup");
  std::string expected((std::istreambuf_iterator<char>(own)), std::istreambuf_iterator<char>());
  for (bool kernel_pidfd : {true, false}) {
    CAPTURE(kernel_pidfd);
    int pair[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    Fd a(pair[0]);
    Fd b(pair[1]);
    auto peer = read_socket_peer(a.get(), kernel_pidfd);
    CHECK(peer.problem == "");
    CHECK(peer.pid == getpid());
    CHECK(peer.uid == getuid());
    CHECK(peer.cgroup == expected);
  }
}

TEST_CASE("read_socket_peer refuses a peer that has exited and been reaped") {
  TempDir dir;
  Fd listener = listen_at(dir / "l");
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Connect, hand the connection to nobody, and exit: the connection stays queued.
    Fd c = connect_to(dir / "l");
    _exit(c.valid() ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  Fd conn(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(conn.valid());
  for (bool kernel_pidfd : {true, false}) {
    CAPTURE(kernel_pidfd);
    auto peer = read_socket_peer(conn.get(), kernel_pidfd);
    CHECK(peer.problem != "");
    CHECK(peer.cgroup == "");
  }
}

TEST_CASE("Without a server the client gets EOF, and a later client reaches the server") {
  Setup s(ProxyLimits{}, /*with_server=*/false);
  Fd early = connect_to(s.dir / "proxy");
  CHECK(gets_eof(early.get()));
  CHECK(kill(s.proxy->pid(), 0) == 0);  // the proxy outlives the failed connection

  s.server_listener = listen_at(s.dir / "server");
  CHECK(s.relayed_from_new_client("now") == "now");
}

TEST_CASE("Queues are bounded by the default limits, and closed ones give the memory back") {
  // Default limits. 100 clients each write until nothing more goes in while the server reads
  // nothing, so that every upstream queue fills to its cap; then they all close.
  Setup s;
  {  // One connection first, so that the relay's code is paged in: idle means "has served".
    auto [client, server] = s.connect_pair();
    const auto data = pattern(4096, 11);
    REQUIRE(transfer(client, server, data) == data);
  }
  const long idle = s.proxy->rss_kib();
  std::vector<std::pair<Fd, Fd>> pairs;
  const std::string chunk(65536, 'x');
  for (int i = 0; i < 100; ++i) {
    auto [client, server] = s.connect_pair();
    set_nonblocking(client);
    for (int stuck = 0; stuck < 10;) {
      if (send(client.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL) > 0)
        stuck = 0;
      else
        ++stuck, std::this_thread::sleep_for(2ms);
    }
    pairs.emplace_back(std::move(client), std::move(server));
  }
  const long full = s.proxy->rss_kib();
  MESSAGE("proxy RSS: idle " << idle << " KiB, 100 full queues " << full << " KiB");
  // The stated bound: 64 KiB queued per direction (README), so 100 full queues take under
  // 6.4 MiB, plus bookkeeping.
  CHECK(ProxyLimits{}.max_queued_bytes == 64 * 1024);
  CHECK(full - idle < 100 * 64 + 2048);
  pairs.clear();
  // Closed: the proxy notices (bounded wait); its RSS is back near idle.
  for (int i = 0; i < kPatienceMs / 20 && s.proxy->fd_count() > 8; ++i)
    std::this_thread::sleep_for(20ms);
  MESSAGE("proxy RSS after close: " << s.proxy->rss_kib() << " KiB");
  CHECK(s.proxy->rss_kib() - idle < 2048);
}

TEST_CASE("A fast writer and a slow reader keep the proxy's queue bounded") {
  Setup s(ProxyLimits{.max_queued_bytes = 64 * 1024, .max_queued_fds = 256});
  auto [client, server] = s.connect_pair();
  set_nonblocking(client);
  const long rss_before = s.proxy->rss_kib();
  const size_t fds_before = s.proxy->fd_count();

  SUBCASE("bytes") {
    // The writer stops when the socket buffers and the proxy's 64 KiB are full; a proxy
    // that buffered without bound would take all 32 MiB.
    const auto data = pattern(32 << 20, 3);
    size_t sent = 0;
    for (int idle = 0; idle < 20 && sent < data.size();) {
      const ssize_t n = send(client.get(), data.data() + sent,
                             std::min<size_t>(65536, data.size() - sent), MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        idle = 0;
      } else {
        ++idle;
        std::this_thread::sleep_for(5ms);
      }
    }
    CHECK(sent < (2 << 20));
    CHECK(s.proxy->rss_kib() - rss_before < 1024);
    // Then the reader catches up and everything arrives intact.
    CHECK(read_bytes(server.get(), sent) == data.substr(0, sent));
  }
  SUBCASE("descriptors") {
    Fd memfd = make_memfd("x");
    size_t sent = 0;
    for (int idle = 0; idle < 20 && sent < 5000;) {
      if (send_with_fds(client.get(), "f", {memfd.get()}, MSG_DONTWAIT)) {
        ++sent;
        idle = 0;
      } else {
        ++idle;
        std::this_thread::sleep_for(5ms);
      }
    }
    CHECK(sent < 5000);
    CHECK(s.proxy->fd_count() <= fds_before + 256);
    size_t received = 0;
    while (received < sent) {
      auto r = receive(server.get());
      REQUIRE(r.n > 0);
      CHECK(r.fds.size() == r.bytes.size());
      received += r.fds.size();
    }
    CHECK(received == sent);
  }
}

TEST_CASE("Truncated control data closes that connection without leaking descriptors") {
  // With a descriptor limit of 16 the proxy cannot install 40 fds: the kernel truncates
  // them and sets MSG_CTRUNC.
  Setup s(ProxyLimits{}, true, [] {
    const rlimit limit{16, 16};
    setrlimit(RLIMIT_NOFILE, &limit);
  });
  { auto [client, server] = s.connect_pair(); }
  const size_t baseline = s.proxy->settled_fd_count();
  {
    auto [client, server] = s.connect_pair();
    std::vector<Fd> files;
    std::vector<int> raw;
    for (int i = 0; i < 40; ++i) {
      files.push_back(make_memfd("t"));
      raw.push_back(files.back().get());
    }
    REQUIRE(send_with_fds(client.get(), "too many", raw));
    auto r = receive(server.get());
    CHECK(r.n == 0);  // EOF, and neither the bytes nor a part of the fds
    CHECK(r.fds.empty());
    CHECK(gets_eof(client.get()));
  }
  CHECK(s.proxy->fd_count_settles_at(baseline) == baseline);
  // The proxy goes on serving.
  CHECK(s.relayed_from_new_client("ok") == "ok");
}

TEST_CASE("Credentials a client sends never reach the server") {
  Setup s;
  auto [client, server] = s.connect_pair();
  const int on = 1;
  REQUIRE(setsockopt(server.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0);

  // Root may claim any uid; anyone may at least send their own pid.
  ucred claimed{getpid(), geteuid() == 0 ? 4242u : getuid(), geteuid() == 0 ? 4242u : getgid()};
  REQUIRE(send_with_control(client.get(), "c", SCM_CREDENTIALS, &claimed, sizeof claimed,
                            MSG_NOSIGNAL) == 1);

  auto r = receive(server.get());
  CHECK(r.bytes == "c");
  REQUIRE(r.creds);
  // The server sees the proxy, which sent the byte, and not what the client claimed.
  CHECK(r.cred.pid == s.proxy->pid());
  CHECK(r.cred.uid == getuid());
}

TEST_CASE("Stopping the proxy gives its clients EOF") {
  Setup s;
  auto [client, server] = s.connect_pair();
  CHECK(s.proxy->stop() == 0);
  CHECK(gets_eof(client.get()));
  CHECK(gets_eof(server.get()));
}

TEST_CASE("Clients beyond the connection limit are refused") {
  Setup s(ProxyLimits{.max_connections = 2});
  auto [c1, s1] = s.connect_pair();
  auto [c2, s2] = s.connect_pair();
  Fd third = connect_to(s.dir / "proxy");
  CHECK(gets_eof(third.get()));
  CHECK(relayed(c2, s2, "2") == "2");
}

TEST_CASE("The proxy command rejects bad usage") {
  SUBCASE("a missing option") {
    std::vector<std::string> args = {"--listen-fd", "3"};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    CHECK(proxy_command(static_cast<int>(argv.size()), argv.data()) == 2);
  }
  SUBCASE("a descriptor that is not a listening socket") {
    Fd memfd = make_memfd("");
    std::vector<std::string> args = {"--listen-fd",   std::to_string(memfd.get()),
                                     "--connect",     "/nonexistent",
                                     "--peer-uid",    "1000",
                                     "--peer-domain", "7:/machine"};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    CHECK(proxy_command(static_cast<int>(argv.size()), argv.data()) == 1);
  }
  SUBCASE("no domain to serve, or a malformed one: never by uid alone (S10)") {
    TempDir dir;
    Fd listener = listen_at(dir / "never");
    for (const char* domain : {"", "x:/machine", "7:machine", "7:/machine/../user.slice"}) {
      std::vector<std::string> args = {"--listen-fd", std::to_string(listener.get()),
                                       "--connect",   "/nonexistent",
                                       "--peer-uid",  "1000"};
      if (*domain) args.insert(args.end(), {"--peer-domain", domain});
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      CAPTURE(domain);
      CHECK(proxy_command(static_cast<int>(argv.size()), argv.data()) == (*domain ? 1 : 2));
    }
  }
}

TEST_CASE("spawn_proxy refuses to run a proxy as root") {
  ProxyOptions options{"/run/user/1000/pipewire-0", 64055, {}, DomainCgroup{7, "/machine"}};
  CHECK_THROWS_AS(spawn_proxy("/bin/true", Fd(), options, 0, 0, "vm/pipewire"), Error);
}

TEST_CASE("spawn_proxy refuses a proxy that would serve QEMU's uid in any VM (S10)") {
  ProxyOptions options{"/run/user/1000/pipewire-0", 64055, {}, {}};
  CHECK_THROWS_WITH_AS(spawn_proxy("/bin/true", Fd(), options, 1000, 1000, "vm/pipewire"),
                       doctest::Contains("cannot be told from another VM's"), Error);
  options.peer_domain = DomainCgroup{-1, "/machine"};  // a domain that does not run yet
  CHECK_THROWS_WITH_AS(spawn_proxy("/bin/true", Fd(), options, 1000, 1000, "vm/pipewire"),
                       doctest::Contains("cannot be told from another VM's"), Error);
}

TEST_CASE("stop_proxy ends a process that ignores SIGTERM, and is harmless after exit") {
  int ready[2];
  REQUIRE(pipe2(ready, O_CLOEXEC) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    signal(SIGTERM, SIG_IGN);
    (void)!write(ready[1], "r", 1);
    for (;;) pause();
  }
  close(ready[1]);
  char byte;
  REQUIRE(read(ready[0], &byte, 1) == 1);  // SIGTERM is ignored from here on
  close(ready[0]);
  Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  REQUIRE(pidfd.valid());
  stop_proxy(pidfd.get());  // returns (its wait for SIGTERM is bounded) with the process gone
  CHECK(kill(pid, 0) < 0);
  CHECK(waitpid(pid, nullptr, WNOHANG) < 0);  // stopped and already reaped
  stop_proxy(pidfd.get());                    // again: nothing happens
}

}  // namespace sockhook

namespace sockhook {
namespace {

std::string status_field(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) {
      auto value = line.substr(field.size() + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      value.erase(value.find_last_not_of(" \t") + 1);
      return value;
    }
  return "";
}

/// The sockhook binary next to this test binary, or "" (with a message) when the spawn tests
/// cannot run: they need root (to drop privileges) and that binary.
std::filesystem::path spawn_exe() {
  const auto exe = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "sockhook";
  if (geteuid() == 0 && std::filesystem::exists(exe)) return exe;
  MESSAGE("skipped: needs root and " << exe.string());
  return {};
}

}  // namespace

TEST_CASE("spawn_proxy runs the proxy as the owner, with nothing of the spawner's") {
  const auto exe = spawn_exe();
  if (exe.empty()) return;
  TempDir dir;
  chmod(dir.path.c_str(), 0755);
  Fd listener = listen_at(dir / "proxy");
  // A descriptor the spawner leaks (no CLOEXEC), like the hook's stdout pipe to libvirt.
  int leak[2];
  REQUIRE(pipe(leak) == 0);
  Fd leak_read(leak[0]);
  Fd leak_write(leak[1]);

  ProxyOptions options{dir / "server", 64055, {}, DomainCgroup{7, "/machine"}};
  auto proxy = spawn_proxy(exe, std::move(listener), options, 65534, 65534, "test/spawn");
  REQUIRE(proxy.pid > 0);
  REQUIRE(proxy.pidfd.valid());
  std::this_thread::sleep_for(200ms);  // exec done, relay running

  CHECK(status_field(proxy.pid, "Uid") == "65534\t65534\t65534\t65534");
  CHECK(status_field(proxy.pid, "Gid") == "65534\t65534\t65534\t65534");
  CHECK(status_field(proxy.pid, "Groups") == "65534");
  CHECK(status_field(proxy.pid, "NoNewPrivs") == "1");
  CHECK(status_field(proxy.pid, "CapEff") == "0000000000000000");
  CHECK(status_field(proxy.pid, "CapPrm") == "0000000000000000");
  CHECK(getsid(proxy.pid) == proxy.pid);
  const std::string fd_dir = "/proc/" + std::to_string(proxy.pid) + "/fd/";
  for (const char* fd : {"0", "1", "2"})
    CHECK(std::filesystem::read_symlink(fd_dir + fd) == "/dev/null");
  CHECK(std::filesystem::read_symlink(fd_dir + "3").string().rfind("socket:", 0) == 0);
  // Only the spawner holds the leaked pipe: closing our end gives EOF at once.
  leak_write.reset();
  CHECK(wait_for(leak_read.get(), POLLIN, kPatienceMs));
  char byte;
  CHECK(read(leak_read.get(), &byte, 1) == 0);
  std::ifstream cmdline("/proc/" + std::to_string(proxy.pid) + "/cmdline");
  std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  CHECK(args.find("test/spawn") != std::string::npos);

  // Root is not the peer uid: refused.
  Fd client = connect_to(dir / "proxy");
  CHECK(gets_eof(client.get()));

  stop_proxy(proxy.pidfd.get());
  CHECK(kill(proxy.pid, 0) < 0);
}

TEST_CASE("spawn_proxy records the child's identity while it is still root") {
  const auto exe = spawn_exe();
  if (exe.empty()) return;
  TempDir dir;
  chmod(dir.path.c_str(), 0755);
  ProxyOptions options{dir / "server", 64055, {}, DomainCgroup{7, "/machine"}};
  SUBCASE("the record runs before the child can run as the owner") {
    pid_t recorded = 0;
    unsigned long long started = 0;
    std::string uid_then;
    auto proxy = spawn_proxy(exe, listen_at(dir / "proxy"), options, 65534, 65534, "test/record",
                             [&](pid_t pid, unsigned long long starttime) {
                               recorded = pid;
                               started = starttime;
                               uid_then = status_field(pid, "Uid");
                             });
    CHECK(recorded == proxy.pid);
    CHECK(started != 0);
    CHECK(started == process_starttime(proxy.pid));
    CHECK(uid_then == "0\t0\t0\t0");  // the owner could not have signalled it yet
    stop_proxy(proxy.pidfd.get());
  }
  SUBCASE("a child stopped before it execs is abandoned within the bound") {
    // The owner may SIGSTOP the child once it runs as the owner. Stopping it here, while it
    // waits for the go-ahead, holds it before exec the same way, deterministically.
    pid_t child = 0;
    std::string what;
    try {
      spawn_proxy(exe, listen_at(dir / "proxy"), options, 65534, 65534, "test/stopped",
                  [&](pid_t pid, unsigned long long) {
                    child = pid;
                    REQUIRE(kill(pid, SIGSTOP) == 0);
                  });
    } catch (const Error& e) {
      what = e.what();
    }
    CHECK(what.find("test/stopped: its process did not start within") != std::string::npos);
    REQUIRE(child > 0);
    CHECK(kill(child, 0) < 0);  // killed (stopped or not) and reaped
  }
  SUBCASE("a record that fails ends the child before it ran anything") {
    pid_t child = 0;
    CHECK_THROWS_AS(spawn_proxy(exe, listen_at(dir / "proxy"), options, 65534, 65534, "test/record",
                                [&](pid_t pid, unsigned long long) {
                                  child = pid;
                                  throw Error("journal full");
                                }),
                    Error);
    REQUIRE(child > 0);
    CHECK(kill(child, 0) < 0);  // killed and reaped
  }
}

}  // namespace sockhook

namespace sockhook {

TEST_CASE("undo_proxy never kills by who holds the listening socket") {
  // The owner can hand the proxy's listening socket to any process. With no pid in the
  // journal, that process must survive the undo.
  TempDir dir;
  Fd listener = listen_at(dir / "lent");
  struct stat st {};
  REQUIRE(fstat(listener.get(), &st) == 0);
  const pid_t holder = fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    for (;;) pause();  // holds `listener`, inherited
  }
  listener.reset();
  ProxyStarted e;
  e.path = dir / "lent";
  e.listen_ino = st.st_ino;
  (void)stop_served(e);
  CHECK(kill(holder, 0) == 0);
  CHECK(waitpid(holder, nullptr, WNOHANG) == 0);  // still running, not killed
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
}

}  // namespace sockhook
