// The relay loop: accepts and checks clients (S10), connects each to the real server, and moves
// bytes and descriptors both ways through bounded queues (proxy/queue.hpp, S6). The process
// around it (command line, signals) is proxy/proxy_command.cpp.

#include "proxy/relay.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <list>
#include <optional>
#include <vector>

#include "base/error.hpp"
#include "base/split.hpp"
#include "host/proc.hpp"
#include "proxy/queue.hpp"
#include "sys/socket.hpp"

namespace sockhook {
namespace {

using Clock = std::chrono::steady_clock;

/// The kernel's SCM_MAX_FD: the most descriptors one message can carry.
constexpr size_t kScmMaxFd = 253;
/// Room for a full SCM_RIGHTS message plus any other control message a peer might add.
constexpr size_t kControlSize = CMSG_SPACE(sizeof(int) * kScmMaxFd) + CMSG_SPACE(256);
/// Reads per wakeup from one socket, so that one busy client cannot starve the others.
constexpr int kReadsPerWakeup = 16;
constexpr int kAcceptsPerWakeup = 64;
/// Closed connections after which freed heap memory is handed back (malloc_trim).
constexpr size_t kTrimAfterClosed = 64;
/// A full backlog on the real server stalls the loop at most this long per client.
constexpr int kConnectTimeoutMs = 500;
/// Refused connections logged per second; the rest are counted in one line.
constexpr int kRefusalLinesPerSecond = 10;
/// After EMFILE and friends, accepting pauses this long instead of spinning.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

struct Pair;

/// One socket of a connection pair.
struct Side {
  Pair* pair;
  Fd fd;
  bool registered = false;
  uint32_t events = 0;
  bool hup = false;  // the peer is gone (EPOLLHUP/EPOLLERR): nothing more can be written
};

/// Bytes flowing from one side to the other.
struct Direction {
  Queue queue;
  bool eof = false;      // the source sent EOF and everything was read
  bool shut = false;     // shutdown(SHUT_WR) was passed on to the destination
  bool blocked = false;  // the destination's buffer is full; wait for EPOLLOUT
};

/// An accepted client and its own connection to the real server.
struct Pair {
  Side client{this, Fd()};
  Side server{this, Fd()};
  Direction up;    // client → server
  Direction down;  // server → client
  bool dead = false;
  std::list<Pair>::iterator self;
};

/// Stand-ins in epoll_event.data.ptr for the descriptors that are not connection sides.
char listener_tag;
char stop_tag;

class Relay {
 public:
  Relay(Fd listen_fd, const ProxyOptions& options, int stop_fd)
      : listen_(std::move(listen_fd)),
        options_(options),
        stop_fd_(stop_fd),
        pool_(std::clamp<size_t>(options.limits.max_queued_bytes, 4096, 16 << 20)) {}

  int run();

 private:
  bool accept_clients();
  Fd connect_server();
  void on_side(Side& side, uint32_t events);
  bool can_read(const Direction& dir, const Side& to) const;
  bool pump(Side& from, Side& to, Direction& dir);
  bool flush(Side& to, Direction& dir);
  void update_interest(Side& side, const Direction& out, const Direction& in, const Side& other);
  void close_pair(Pair& pair);
  void set_listening(bool on);
  /// Why `peer` may not use the lend, or nullopt if it may.
  std::optional<std::string> refusal_of(const SocketPeer& peer) const;
  /// Logs a refused connection: at most kRefusalLinesPerSecond lines a second, then one line
  /// that counts the rest, so that a flood of connections cannot flood the log.
  void log_refusal(const std::string& text);
  /// Logs "proxy LABEL: TEXT" ("proxy for PATH: TEXT" without a label).
  void log(int priority, const std::string& text) const {
    if (options_.label.empty())
      syslog(priority, "proxy for %s: %s", options_.connect_path.c_str(), text.c_str());
    else
      syslog(priority, "proxy %s: %s", options_.label.c_str(), text.c_str());
  }
  /// Logs "proxy LABEL: WHAT: strerror(errno)".
  void log_errno(int priority, const std::string& what) const {
    log(priority, what + ": " + std::strerror(errno));
  }

  Fd listen_;
  ProxyOptions options_;
  int stop_fd_;
  Fd epoll_;
  sockaddr_un server_addr_{};
  socklen_t server_addr_len_ = 0;
  BufferPool pool_;
  std::list<Pair> pairs_;
  std::vector<std::list<Pair>::iterator> dead_;
  bool listening_ = false;
  size_t closed_since_trim_ = 0;
  Clock::time_point accept_resume_;
  Clock::time_point refusal_window_;
  int refusals_in_window_ = 0;
  int refusals_unlogged_ = 0;
  alignas(cmsghdr) char control_[kControlSize];
};

void epoll_add(int epoll, int fd, uint32_t events, void* ptr) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = ptr;
  if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev) < 0) throw_errno("cannot add to epoll");
}

int Relay::run() {
  if (options_.connect_path.empty() || options_.connect_path[0] != '/')
    throw Error("cannot relay to '" + options_.connect_path + "': not an absolute path");
  if (options_.connect_path.size() >= sizeof(server_addr_.sun_path))
    throw Error("cannot relay to " + options_.connect_path + ": path too long for a socket");
  server_addr_.sun_family = AF_UNIX;
  std::memcpy(server_addr_.sun_path, options_.connect_path.c_str(),
              options_.connect_path.size() + 1);
  server_addr_len_ =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + options_.connect_path.size() + 1);

  // Accepted sockets inherit these flags from the listener. Off, the kernel never hands us
  // credentials or security labels, so there is nothing of that kind we could forward.
  const int off = 0;
  setsockopt(listen_.get(), SOL_SOCKET, SO_PASSCRED, &off, sizeof off);
  setsockopt(listen_.get(), SOL_SOCKET, SO_PASSSEC, &off, sizeof off);
  const int flags = fcntl(listen_.get(), F_GETFL);
  if (flags < 0 || fcntl(listen_.get(), F_SETFL, flags | O_NONBLOCK) < 0)
    throw_errno("cannot make the listening socket non-blocking");

  epoll_ = Fd(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw_errno("cannot create epoll instance");
  epoll_add(epoll_.get(), stop_fd_, EPOLLIN, &stop_tag);
  set_listening(true);

  std::vector<epoll_event> events(64);
  for (;;) {
    int timeout = -1;
    if (!listening_) {  // accepting is paused (EMFILE); resume when the pause is over
      const auto now = Clock::now();
      if (now >= accept_resume_)
        set_listening(true);
      else
        timeout = static_cast<int>(
            std::chrono::ceil<std::chrono::milliseconds>(accept_resume_ - now).count());
    }
    const int n = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      log_errno(LOG_ERR, "epoll_wait");
      return 1;
    }
    bool stop = false;
    for (int i = 0; i < n; ++i) {
      void* ptr = events[static_cast<size_t>(i)].data.ptr;
      const uint32_t ev = events[static_cast<size_t>(i)].events;
      if (ptr == &stop_tag) {
        stop = true;
      } else if (ptr == &listener_tag) {
        if ((ev & (EPOLLERR | EPOLLHUP)) || !accept_clients()) {
          log(LOG_ERR, "the listening socket failed");
          return 1;
        }
      } else {
        auto* side = static_cast<Side*>(ptr);
        if (!side->pair->dead) on_side(*side, ev);
      }
    }
    if (!dead_.empty()) {
      closed_since_trim_ += dead_.size();
      for (auto it : dead_) pairs_.erase(it);
      dead_.clear();
      // malloc keeps what the closed connections' bookkeeping freed; hand it back once a
      // good share of them went, or all did.
      if (pairs_.empty() || closed_since_trim_ >= kTrimAfterClosed) {
        malloc_trim(0);
        closed_since_trim_ = 0;
      }
    }
    if (stop) return 0;
  }
}

void Relay::set_listening(bool on) {
  if (on == listening_) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &listener_tag;
  epoll_ctl(epoll_.get(), on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, listen_.get(), &ev);
  listening_ = on;
}

bool Relay::accept_clients() {
  for (int i = 0; i < kAcceptsPerWakeup; ++i) {
    Fd client(accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client) {
      switch (errno) {
        case EAGAIN:
          return true;
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
          continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          // Out of descriptors or memory: stop accepting for a moment rather than spin on
          // a listener that stays readable.
          log_errno(LOG_WARNING, "cannot accept a client");
          set_listening(false);
          accept_resume_ = Clock::now() + kAcceptPause;
          return true;
        default:
          return false;
      }
    }
    // Only this domain's QEMU may use the lent socket: QEMU's uid (S6) and its domain's
    // cgroup (S10). A refused client costs one log line, rate-limited, and nothing else.
    auto peer = read_socket_peer(client.get(), options_.kernel_peer_pidfd);
    if (auto refusal = refusal_of(peer)) {
      log_refusal(*refusal);
      continue;
    }
    if (pairs_.size() >= options_.limits.max_connections) {
      log(LOG_WARNING, "refused pid " + std::to_string(peer.pid) + ": " +
                           std::to_string(options_.limits.max_connections) +
                           " connections is the limit");
      continue;
    }
    Fd server = connect_server();
    if (!server) continue;  // the client gets EOF; a later one may find the server

    auto& pair = pairs_.emplace_back();
    pair.self = std::prev(pairs_.end());
    pair.client.fd = std::move(client);
    pair.server.fd = std::move(server);
    // Clients usually write right after connecting: relay that now rather than after
    // another round through epoll_wait. This also registers both sockets.
    on_side(pair.client, EPOLLIN);
  }
  return true;
}

std::optional<std::string> Relay::refusal_of(const SocketPeer& peer) const {
  auto who = "peer pid " + std::to_string(peer.pid) + " uid " +
             (peer.uid == static_cast<uid_t>(-1) ? std::string("?") : std::to_string(peer.uid));
  if (peer.uid != options_.peer_uid)
    return who + ": only uid " + std::to_string(options_.peer_uid) + " is served";
  if (!options_.peer_domain) return std::nullopt;
  if (!peer.problem.empty()) return who + ": cannot tell which VM it belongs to: " + peer.problem;
  if (proc_cgroup_in_domain(peer.cgroup, *options_.peer_domain)) return std::nullopt;
  // The unified hierarchy's path says it all where there is one ("0::/machine/..."); else
  // every hierarchy's, on one line.
  std::string cgroups;
  for (auto line : split(peer.cgroup, '\n'))
    if (line.starts_with("0::")) cgroups = line.substr(3);
  if (cgroups.empty())
    for (char c : peer.cgroup.substr(0, 512)) cgroups += c == '\n' ? ';' : c;
  while (!cgroups.empty() && cgroups.back() == ';') cgroups.pop_back();
  return who + " cgroup " + cgroups + ": not in this VM's cgroup (" +
         describe_domain_cgroup(*options_.peer_domain) + ")";
}

void Relay::log_refusal(const std::string& text) {
  auto now = Clock::now();
  if (now - refusal_window_ >= std::chrono::seconds(1)) {
    if (refusals_unlogged_ > 0)
      log(LOG_WARNING, std::to_string(refusals_unlogged_) + " more connections refused");
    refusal_window_ = now;
    refusals_in_window_ = 0;
    refusals_unlogged_ = 0;
  }
  if (refusals_in_window_++ < kRefusalLinesPerSecond)
    log(LOG_WARNING, "refused " + text);
  else
    ++refusals_unlogged_;
}

Fd Relay::connect_server() {
  auto* addr = reinterpret_cast<const sockaddr*>(&server_addr_);
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    log_errno(LOG_WARNING, "cannot create a socket");
    return Fd();
  }
  // This process runs as the socket's owner, so connecting by path reaches only what the
  // owner could reach anyway.
  if (retry_eintr([&] { return connect(fd.get(), addr, server_addr_len_); }) == 0) return fd;
  if (errno == EAGAIN) {
    // The server's backlog is full. A blocking connect with a send timeout waits for room,
    // for a bounded time.
    const int flags = fcntl(fd.get(), F_GETFL);
    const timeval timeout{0, kConnectTimeoutMs * 1000};
    fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    const int rc = retry_eintr([&] { return connect(fd.get(), addr, server_addr_len_); });
    const int err = errno;
    const timeval none{0, 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
    fcntl(fd.get(), F_SETFL, flags);
    if (rc == 0) return fd;
    errno = err;
  }
  log_errno(errno == ENOENT || errno == ECONNREFUSED ? LOG_INFO : LOG_WARNING,
            "cannot connect to the server");
  return Fd();
}

bool Relay::can_read(const Direction& dir, const Side& to) const {
  const auto& q = dir.queue;
  return !dir.eof && !to.hup && q.free_space(pool_) > 0 &&
         (q.fd_count() == 0 || q.fd_count() + kScmMaxFd <= options_.limits.max_queued_fds);
}

void Relay::on_side(Side& side, uint32_t events) {
  Pair& pair = *side.pair;
  const bool is_client = &side == &pair.client;
  Side& other = is_client ? pair.server : pair.client;
  Direction& out = is_client ? pair.up : pair.down;  // read from `side`
  Direction& in = is_client ? pair.down : pair.up;   // written to `side`

  if (events & (EPOLLHUP | EPOLLERR)) side.hup = true;
  bool ok = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
    in.blocked = false;
    ok = flush(side, in);
  }
  if (ok && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) ok = pump(side, other, out);
  if (!ok) return close_pair(pair);

  // Pass EOF on once everything before it was delivered.
  for (auto [dir, to] : {std::pair{&pair.up, &pair.server}, std::pair{&pair.down, &pair.client}}) {
    if (dir->eof && dir->queue.empty() && !dir->shut && !to->hup) {
      shutdown(to->fd.get(), SHUT_WR);
      dir->shut = true;
    }
  }
  const bool up_done = pair.up.shut || pair.server.hup;
  const bool down_done = pair.down.shut || pair.client.hup;
  if (up_done && down_done) return close_pair(pair);

  update_interest(pair.client, pair.up, pair.down, pair.server);
  update_interest(pair.server, pair.down, pair.up, pair.client);
}

/// Reads what `from` sent and passes it on to `to`, with the descriptors that came.
///
/// Where descriptors go: the kernel ends a stream read right after the first write with
/// descriptors that it reaches, and glues the fd-less data queued before that write onto it
/// (net/unix/af_unix.c, unix_stream_read_generic: `if (scm.fp) break;`). So the descriptors a
/// read brings belong to a write that starts inside that read, and a read never holds bytes of
/// two writes with descriptors. The queue attaches them to the read's first byte: they reach
/// the peer with or before the first byte of their own write, never after it, in order, and
/// never merged with another write's. That is what Wayland and PipeWire need: they queue
/// descriptors and take them when a message asks for them. PulseAudio pairs descriptors with
/// frames, but through the proxy it passes none: the pulseaudio plugin turns shared memory,
/// memfd and srbchannel off on QEMU's side (tests/root/proxy_pulse_fds.sh). A write with
/// descriptors costs one read like any other (issue 22): the proxy used to find its first
/// byte by reading the last 64 bytes one at a time after a peek, 69 reads for 48 KB glued to
/// one descriptor where 48 KB alone take 3, and from the front before that, about 7000 times
/// the CPU of the plain stream (tests/root/proxy_cpu.sh).
bool Relay::pump(Side& from, Side& to, Direction& dir) {
  int reads = 0;
  while (can_read(dir, to) && reads++ < kReadsPerWakeup) {
    iovec iov[2];
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(dir.queue.free_iov(pool_, iov));
    msg.msg_control = control_;
    msg.msg_controllen = sizeof control_;
    const size_t wanted = iov[0].iov_len + (msg.msg_iovlen > 1 ? iov[1].iov_len : 0);
    const ssize_t n = recvmsg(from.fd.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (errno != ECONNRESET) log_errno(LOG_WARNING, "cannot read");
      return false;
    }

    // Take ownership of every descriptor that arrived, whatever the message type, so that
    // none leaks; forward only SCM_RIGHTS (S6).
    std::vector<Fd> fds;
    bool foreign = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        take_rights(*c, fds);
      } else {
#ifdef SCM_PIDFD
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_PIDFD) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
          Fd drop(fd);
        }
#endif
        foreign = true;  // e.g. SCM_CREDENTIALS: never relayed
      }
    }
    if (foreign) log(LOG_DEBUG, "dropped a control message that is not SCM_RIGHTS");
    if (msg.msg_flags & MSG_CTRUNC) {
      // Some descriptors were lost (too many, or our descriptor limit): the byte stream
      // no longer matches what the peer sent, so the connection cannot go on (S6).
      log(LOG_WARNING, "control data truncated; closing the connection");
      return false;
    }
    if (n == 0) {
      dir.eof = true;
      break;
    }
    // can_read() left room for a full message unless the limit is below SCM_MAX_FD; a
    // message that still does not fit breaks the cap, and the cap wins (S6).
    if (dir.queue.fd_count() + fds.size() > options_.limits.max_queued_fds) {
      log(LOG_WARNING, std::to_string(dir.queue.fd_count() + fds.size()) +
                           " queued descriptors exceed the limit; closing the connection");
      return false;
    }
    dir.queue.commit(static_cast<size_t>(n), std::move(fds));
    // Pass the bytes on at once; they stay queued only if the other side is full.
    if (!dir.blocked && !flush(to, dir)) return false;
    if (static_cast<size_t>(n) < wanted) break;  // drained; epoll says when there is more
  }
  // A read that found nothing (EAGAIN, EOF) borrowed a buffer for nothing: give it back.
  dir.queue.release_if_empty(pool_);
  return true;
}

bool Relay::flush(Side& to, Direction& dir) {
  if (to.hup) {  // the destination's peer is gone; what is queued can never arrive
    dir.queue.clear(pool_);
    return true;
  }
  while (!dir.queue.empty()) {
    iovec iov[2];
    std::vector<Fd>* fds = nullptr;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(dir.queue.data_iov(pool_, iov, &fds));
    const size_t len = iov[0].iov_len + (msg.msg_iovlen > 1 ? iov[1].iov_len : 0);
    if (fds) {
      msg.msg_control = control_;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds->size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds->size());
      for (size_t k = 0; k < fds->size(); ++k) {
        const int fd = (*fds)[k].get();
        std::memcpy(CMSG_DATA(c) + k * sizeof(int), &fd, sizeof fd);
      }
    }
    const ssize_t n = sendmsg(to.fd.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        dir.blocked = true;
        return true;
      }
      if (errno != EPIPE && errno != ECONNRESET) log_errno(LOG_WARNING, "cannot write");
      return false;
    }
    // A sendmsg that moved at least one byte carried the descriptors with it.
    dir.queue.consume(static_cast<size_t>(n), fds != nullptr, pool_);
    if (static_cast<size_t>(n) < len) {
      dir.blocked = true;
      return true;
    }
  }
  return true;
}

void Relay::update_interest(Side& side, const Direction& out, const Direction& in,
                            const Side& other) {
  uint32_t events = 0;
  if (can_read(out, other)) events |= EPOLLIN;
  if (!in.queue.empty() && !side.hup) events |= EPOLLOUT;
  // A socket whose peer is gone reports EPOLLHUP even with no interest; unregister it while
  // we wait for the other side, or the loop would spin.
  const bool want_registered = events != 0 || !side.hup;
  if (want_registered == side.registered && (!want_registered || events == side.events)) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &side;
  int op = EPOLL_CTL_MOD;
  if (!want_registered)
    op = EPOLL_CTL_DEL;
  else if (!side.registered)
    op = EPOLL_CTL_ADD;
  if (epoll_ctl(epoll_.get(), op, side.fd.get(), &ev) == 0) {
    side.registered = want_registered;
    side.events = events;
  }
}

void Relay::close_pair(Pair& pair) {
  if (pair.dead) return;
  pair.dead = true;
  pair.up.queue.clear(pool_);
  pair.down.queue.clear(pool_);
  // Closing is enough to leave epoll: nothing else holds these descriptors.
  pair.client.fd.reset();
  pair.server.fd.reset();
  dead_.push_back(pair.self);
}

/// Raises the soft descriptor limit to the hard one: queued fds count against it.
void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int run_proxy_until(Fd listen_fd, const ProxyOptions& options, int stop_fd) {
  openlog("sockhook", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  signal(SIGPIPE, SIG_IGN);  // every send uses MSG_NOSIGNAL; this is a second guard
  raise_fd_limit();
  Relay relay(std::move(listen_fd), options, stop_fd);
  return relay.run();
}

}  // namespace sockhook
