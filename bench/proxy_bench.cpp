// Side-by-side benchmark of a unix socket reached directly, through the sockhook proxy, through
// the proxy with its per-connection VM check (S10: the peer's cgroup must be its domain's) and
// through socat. One command, one run; prints a table and can write JSON. The checked proxy
// needs root: the benchmark moves itself into a stand-in domain cgroup
// (/machine/qemu-<id>-proxybench.libvirt-qemu in the cgroup2 hierarchy) for the run and
// removes it after; without root that column is left out, and says so.
//
//   proxy_bench [--quick] [--json FILE] [--no-pinned]
//
// The echo server and the proxy run as separate processes (this binary re-executed with
// --serve / --relay), as the proxy does in production; socat is spawned. The second run
// pins every process to CPU 0.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/domain_cgroup.hpp"
#include "proxy/relay.hpp"
#include "sys/fd.hpp"
#include "sys/socket.hpp"

namespace {

using sockhook::Fd;
using sockhook::retry_eintr;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr size_t kBulkChunk = 256 * 1024;

[[noreturn]] void die(const std::string& what) {
  std::cerr << "proxy_bench: " << what << ": " << std::strerror(errno) << '\n';
  std::exit(1);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

sockaddr_un address_of(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), std::min(path.size() + 1, sizeof addr.sun_path - 1));
  return addr;
}

Fd listen_at(const std::string& path) {
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const auto addr = address_of(path);
  if (!fd || bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0 ||
      listen(fd.get(), SOMAXCONN) < 0)
    die("cannot listen on " + path);
  return fd;
}

/// A blocking connection; waits at most 5 s for room in a full backlog.
Fd connect_to(const std::string& path) {
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const timeval timeout{5, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const auto addr = address_of(path);
  if (retry_eintr([&] {
        return connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
      }) < 0)
    return Fd();
  return fd;
}

/// Moves exactly `size` bytes with `io` (send or recv), retrying EINTR; false on EOF or error.
template <typename Byte, typename Io>
bool io_all(Byte* data, size_t size, Io io) {
  while (size > 0) {
    const ssize_t n = io(data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool write_all(int fd, const char* data, size_t size) {
  return io_all(data, size, [fd](const char* p, size_t n) { return send(fd, p, n, MSG_NOSIGNAL); });
}

bool read_all(int fd, char* data, size_t size) {
  return io_all(data, size, [fd](char* p, size_t n) { return recv(fd, p, n, 0); });
}

// ---------------------------------------------------------------------------------------
// The echo server (its own process). The first byte of a connection picks the mode:
//   'E' echo bytes and descriptors, 'S' sink (at EOF, reply with the byte count),
//   'G' + 8-byte count: generate that many bytes, then close.

int serve(const std::string& path) {
  Fd listener = listen_at(path);
  Fd epoll(epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{EPOLLIN, {.fd = listener.get()}};
  epoll_ctl(epoll.get(), EPOLL_CTL_ADD, listener.get(), &ev);
  struct Conn {
    char mode = 0;
    uint64_t count = 0;
  };
  std::map<int, Conn> conns;
  std::vector<char> buffer(kBulkChunk);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)];
  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(epoll.get(), events, 64, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener.get()) {
        const int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        conns[c] = Conn{};
        epoll_event cev{EPOLLIN, {.fd = c}};
        epoll_ctl(epoll.get(), EPOLL_CTL_ADD, c, &cev);
        continue;
      }
      Conn& conn = conns[fd];
      iovec iov{buffer.data(), buffer.size()};
      auto msg = sockhook::message_header(&iov, 1, control, sizeof control);
      const ssize_t got = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (got < 0 && errno == EAGAIN) continue;
      size_t offset = 0;
      if (got > 0 && conn.mode == 0) {
        conn.mode = buffer[0];
        offset = 1;
      }
      const size_t size = got > 0 ? static_cast<size_t>(got) : 0;
      bool done = got <= 0;
      if (!done && conn.mode == 'E') {
        // Echo, sending back any descriptors that came with the bytes.
        iovec out{buffer.data() + offset, size - offset};
        msghdr reply{};
        reply.msg_iov = &out;
        reply.msg_iovlen = 1;
        if (msg.msg_controllen > 0) {
          reply.msg_control = msg.msg_control;
          reply.msg_controllen = msg.msg_controllen;
        }
        if (out.iov_len > 0 && sendmsg(fd, &reply, MSG_NOSIGNAL) < 0) done = true;
        std::vector<Fd> received;  // echoed above; closed here
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
          if (c->cmsg_type == SCM_RIGHTS) take_rights(*c, received);
      } else if (!done && conn.mode == 'S') {
        conn.count += size - offset;
        std::vector<Fd> received;  // closed here
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
          if (c->cmsg_type == SCM_RIGHTS) take_rights(*c, received);
      } else if (!done && conn.mode == 'G' && size >= 9) {
        uint64_t total;
        std::memcpy(&total, buffer.data() + 1, sizeof total);
        std::memset(buffer.data(), 'g', buffer.size());
        while (total > 0) {
          const size_t chunk = std::min<uint64_t>(total, buffer.size());
          if (!write_all(fd, buffer.data(), chunk)) break;
          total -= chunk;
        }
        done = true;
      }
      if (got == 0 && conn.mode == 'S')
        write_all(fd, reinterpret_cast<const char*>(&conn.count), sizeof conn.count);
      if (done) {
        conns.erase(fd);
        close(fd);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Child processes.

/// A child in its own process group that dies with the bench; `keep_fd` becomes its fd 3.
pid_t spawn(const std::vector<std::string>& args, int keep_fd = -1) {
  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) die("cannot fork");
  if (pid == 0) {
    setpgid(0, 0);  // its own group: socat's per-connection children are stopped with it
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (keep_fd >= 0) {
      dup2(fcntl(keep_fd, F_DUPFD_CLOEXEC, 10), 3);  // via a copy: dup2 onto itself keeps CLOEXEC
      close_range(4, ~0U, 0);
    }
    const int null = open("/dev/null", O_RDWR);
    dup2(null, 1);  // socat and the children stay quiet; the table is ours
    execvp(argv[0], argv.data());
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

std::vector<pid_t> g_children;

void kill_children() {
  for (pid_t pid : g_children) kill(-pid, SIGKILL);
  for (pid_t pid : g_children) waitpid(pid, nullptr, 0);
  g_children.clear();
}

void on_signal(int) {
  for (pid_t pid : g_children) kill(-pid, SIGKILL);
  _exit(130);
}

/// Waits (bounded) until `path` accepts connections.
void wait_listening(const std::string& path) {
  const auto start = Clock::now();
  while (seconds_since(start) < 5) {
    Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto addr = address_of(path);
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      write_all(fd.get(), "E", 1);
      return;
    }
    usleep(10000);
  }
  errno = ETIMEDOUT;
  die("nothing listens on " + path);
}

long status_kib(pid_t pid, const char* field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(status, line))
    if (line.rfind(prefix, 0) == 0) return std::stol(line.substr(prefix.size()));
  return -1;
}

// ---------------------------------------------------------------------------------------
// Measurements.

struct Options {
  bool quick = false;
};

struct Latency {
  double p50_us = 0;
  double p99_us = 0;
};

Latency round_trips(const std::string& path, size_t size, int count, int warmup) {
  Fd fd = connect_to(path);
  if (!fd || !write_all(fd.get(), "E", 1)) return {};
  std::vector<char> out(size, 'x');
  std::vector<char> in(size);
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(count));
  for (int i = 0; i < warmup + count; ++i) {
    const auto start = Clock::now();
    if (!write_all(fd.get(), out.data(), size) || !read_all(fd.get(), in.data(), size)) return {};
    if (i >= warmup) samples.push_back(seconds_since(start) * 1e6);
  }
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples[samples.size() * 99 / 100]};
}

/// MB/s from the client to the server, bounded by bytes and time.
double upload(const std::string& path, size_t max_bytes, double max_seconds) {
  Fd fd = connect_to(path);
  if (!fd || !write_all(fd.get(), "S", 1)) return 0;
  std::vector<char> chunk(kBulkChunk, 'u');
  const auto start = Clock::now();
  size_t sent = 0;
  while (sent < max_bytes && seconds_since(start) < max_seconds) {
    if (!write_all(fd.get(), chunk.data(), chunk.size())) return 0;
    sent += chunk.size();
  }
  shutdown(fd.get(), SHUT_WR);
  uint64_t arrived = 0;
  if (!read_all(fd.get(), reinterpret_cast<char*>(&arrived), sizeof arrived)) return 0;
  return static_cast<double>(arrived) / seconds_since(start) / 1e6;
}

/// MB/s from the server to the client.
double download(const std::string& path, size_t max_bytes, double max_seconds) {
  Fd fd = connect_to(path);
  char request[9] = {'G'};
  const uint64_t total = max_bytes;
  std::memcpy(request + 1, &total, sizeof total);
  if (!fd || !write_all(fd.get(), request, sizeof request)) return 0;
  std::vector<char> chunk(kBulkChunk);
  const auto start = Clock::now();
  size_t got = 0;
  while (got < max_bytes && seconds_since(start) < max_seconds) {
    const ssize_t n = recv(fd.get(), chunk.data(), chunk.size(), 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<double>(got) / seconds_since(start) / 1e6;
}

/// Connections per second, each with one 64-byte round trip.
double connection_rate(const std::string& path, double max_seconds) {
  char message[65] = {'E'};
  char reply[64];
  const auto start = Clock::now();
  int count = 0;
  while (seconds_since(start) < max_seconds) {
    Fd fd = connect_to(path);
    if (!fd || !write_all(fd.get(), message, sizeof message) ||
        !read_all(fd.get(), reply, sizeof reply))
      break;
    ++count;
  }
  return count / seconds_since(start);
}

struct Concurrent {
  int ok = 0;
  double ms = 0;
  long proxy_rss_kib = -1;
};

/// `clients` connections open at once, then one round trip each.
Concurrent concurrent(const std::string& path, int clients, pid_t proxy) {
  const auto start = Clock::now();
  std::vector<Fd> fds;
  for (int i = 0; i < clients; ++i) {
    Fd fd = connect_to(path);
    if (fd) fds.push_back(std::move(fd));
  }
  char message[65] = {'E'};
  for (auto& fd : fds) write_all(fd.get(), message, sizeof message);
  Concurrent result;
  char reply[64];
  for (auto& fd : fds)
    if (read_all(fd.get(), reply, sizeof reply)) ++result.ok;
  result.ms = seconds_since(start) * 1e3;
  if (proxy > 0) result.proxy_rss_kib = status_kib(proxy, "VmRSS");
  return result;
}

/// Sends a memfd and checks that the echo brings back the same file.
bool passes_fds(const std::string& path) {
  Fd fd = connect_to(path);
  if (!fd || !write_all(fd.get(), "E", 1)) return false;
  Fd memfd(memfd_create("bench", MFD_CLOEXEC));
  struct stat sent {};
  fstat(memfd.get(), &sent);
  const int raw = memfd.get();
  if (sockhook::send_with_control(fd.get(), "F", SCM_RIGHTS, &raw, sizeof raw, MSG_NOSIGNAL) != 1)
    return false;
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  auto msg = sockhook::message_header(&iov, 1, control, sizeof control);
  if (recvmsg(fd.get(), &msg, MSG_CMSG_CLOEXEC) != 1) return false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_type != SCM_RIGHTS) continue;
    int received;
    std::memcpy(&received, CMSG_DATA(c), sizeof received);
    Fd back(received);
    struct stat st {};
    return fstat(back.get(), &st) == 0 && st.st_ino == sent.st_ino && st.st_dev == sent.st_dev;
  }
  return false;
}

/// The CPU time `pid` has used, in nanoseconds (schedstat's first field).
uint64_t cpu_ns(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
  uint64_t ns = 0;
  in >> ns;
  return ns;
}

/// The proxy's CPU nanoseconds per byte for a stream of 60 KB writes to the sink, each followed
/// (`with_fds`) by a one-byte write that carries a memfd (issue 22: descriptors after 60 KB).
/// The stream begins with a descriptor, so that the direction has carried one before.
/// kFailed when the stream did not go through (never a figure: the report says "failed").
constexpr double kFailed = -1;
double proxy_ns_per_byte(const std::string& path, pid_t proxy, int writes, bool with_fds) {
  Fd fd = connect_to(path);
  if (!fd || !write_all(fd.get(), "S", 1)) return kFailed;
  Fd memfd(memfd_create("bench", MFD_CLOEXEC));
  const int raw = memfd.get();
  auto send_fd = [&] {
    return sockhook::send_with_control(fd.get(), "f", SCM_RIGHTS, &raw, sizeof raw, MSG_NOSIGNAL) ==
           1;
  };
  if (!send_fd()) return kFailed;
  std::vector<char> chunk(60 * 1024, 'd');
  const uint64_t before = cpu_ns(proxy);
  uint64_t bytes = 1;
  for (int i = 0; i < writes; ++i) {
    if (!write_all(fd.get(), chunk.data(), chunk.size()) || (with_fds && !send_fd()))
      return kFailed;
    bytes += chunk.size() + (with_fds ? 1 : 0);
  }
  shutdown(fd.get(), SHUT_WR);
  uint64_t arrived = 0;  // the sink's count: everything went through the proxy
  if (!read_all(fd.get(), reinterpret_cast<char*>(&arrived), sizeof arrived) || arrived != bytes)
    return kFailed;
  return static_cast<double>(cpu_ns(proxy) - before) / static_cast<double>(bytes);
}

/// A stand-in for a running domain's cgroup, which this process joins for the benchmark (so
/// that its connections pass the checked proxy), and leaves and removes when destroyed.
class BenchDomain {
 public:
  BenchDomain() {
    if (geteuid() != 0) {
      why_not_ = "not root: cannot join a domain's cgroup";
      return;
    }
    std::ifstream mounts("/proc/self/mountinfo");
    for (std::string line; std::getline(mounts, line);) {
      // "... MOUNTPOINT OPTIONS ... - cgroup2 ..."
      if (line.find(" - cgroup2 ") == std::string::npos) continue;
      std::istringstream fields(line);
      std::string f;
      for (int i = 0; i < 5 && fields >> f; ++i) root_ = f;
      break;
    }
    if (root_.empty()) {
      why_not_ = "no cgroup2 hierarchy is mounted";
      return;
    }
    std::ifstream own("/proc/self/cgroup");
    for (std::string line; std::getline(own, line);)
      if (line.starts_with("0::")) original_ = root_ + line.substr(3);
    id_ = 900000 + getpid() % 100000;
    made_machine_ = mkdir((root_ + "/machine").c_str(), 0755) == 0;
    dir_ = root_ + "/machine/qemu-" + std::to_string(id_) + "-proxybench.libvirt-qemu";
    if (mkdir(dir_.c_str(), 0755) != 0 || !join(dir_)) {
      why_not_ = "cannot join " + dir_;
      id_ = -1;
    }
  }
  ~BenchDomain() {
    if (dir_.empty()) return;
    if (!original_.empty()) join(original_);
    rmdir(dir_.c_str());
    if (made_machine_) rmdir((root_ + "/machine").c_str());
  }
  /// "ID:/machine" for --peer-domain, or "" when the benchmark could not join.
  std::string spec() const { return id_ < 0 ? "" : std::to_string(id_) + ":/machine"; }
  const std::string& why_not() const { return why_not_; }

 private:
  /// Moves this process into cgroup directory `dir`.
  static bool join(const std::string& dir) {
    std::ofstream procs(dir + "/cgroup.procs");
    procs << getpid() << std::flush;
    return static_cast<bool>(procs);
  }

  std::string root_, original_, dir_, why_not_;
  long id_ = -1;
  bool made_machine_ = false;
};

nlohmann::json measure(const std::string& path, const Options& options, pid_t proxy) {
  const int rtts = options.quick ? 2000 : 20000;
  const int warmup = options.quick ? 200 : 2000;
  const size_t bulk = options.quick ? (32u << 20) : (256u << 20);
  const double bulk_seconds = options.quick ? 0.5 : 2.0;
  const double conn_seconds = options.quick ? 0.3 : 2.0;
  nlohmann::json r;
  const auto small = round_trips(path, 64, rtts, warmup);
  const auto page = round_trips(path, 4096, rtts, warmup);
  r["rtt64_p50_us"] = small.p50_us;
  r["rtt64_p99_us"] = small.p99_us;
  r["rtt4k_p50_us"] = page.p50_us;
  r["rtt4k_p99_us"] = page.p99_us;
  r["upload_MBps"] = upload(path, bulk, bulk_seconds);
  r["download_MBps"] = download(path, bulk, bulk_seconds);
  r["connections_per_s"] = connection_rate(path, conn_seconds);
  const auto many = concurrent(path, 500, proxy);
  r["concurrent500_ok"] = many.ok;
  r["concurrent500_ms"] = many.ms;
  r["scm_rights"] = passes_fds(path);
  if (proxy > 0) {
    r["rss_under_load_kib"] = many.proxy_rss_kib;
    r["rss_peak_kib"] = status_kib(proxy, "VmHWM");
    const int writes = options.quick ? 500 : 4000;
    r["cpu_ns_per_byte_plain"] = proxy_ns_per_byte(path, proxy, writes, false);
    r["cpu_ns_per_byte_fd_after_60k"] = proxy_ns_per_byte(path, proxy, writes, true);
  }
  return r;
}

/// One run: fresh server, proxy and socat, measured side by side.
nlohmann::json run(const std::string& self, const Options& options, bool pinned,
                   const BenchDomain& domain) {
  cpu_set_t all;
  sched_getaffinity(0, sizeof all, &all);
  if (pinned) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    if (sched_setaffinity(0, sizeof one, &one) < 0) die("cannot pin to CPU 0");
  }
  char dir_template[] = "/tmp/proxy-bench-XXXXXX";
  if (!mkdtemp(dir_template)) die("cannot create a directory");
  const std::string dir = dir_template;
  const std::string server = dir + "/server";
  const std::string proxy = dir + "/proxy";
  const std::string socat = dir + "/socat";
  const std::string checked = dir + "/checked";

  // Children inherit the affinity set above.
  g_children.push_back(spawn({self, "--serve", server}));
  wait_listening(server);
  Fd proxy_listener = listen_at(proxy);
  const pid_t proxy_pid =
      spawn({self, "--relay", server, std::to_string(getuid())}, proxy_listener.get());
  g_children.push_back(proxy_pid);
  proxy_listener.reset();
  pid_t checked_pid = 0;
  if (!domain.spec().empty()) {
    Fd checked_listener = listen_at(checked);
    checked_pid = spawn({self, "--relay", server, std::to_string(getuid()), domain.spec()},
                        checked_listener.get());
    g_children.push_back(checked_pid);
  }
  g_children.push_back(
      spawn({"socat", "UNIX-LISTEN:" + socat + ",fork,backlog=4096", "UNIX-CONNECT:" + server}));
  wait_listening(proxy);
  wait_listening(socat);
  if (checked_pid > 0) wait_listening(checked);
  usleep(100000);

  nlohmann::json result;
  result["pinned"] = pinned;
  result["proxy_idle_rss_kib"] = status_kib(proxy_pid, "VmRSS");
  result["direct"] = measure(server, options, 0);
  result["sockhook"] = measure(proxy, options, proxy_pid);
  if (checked_pid > 0) result["checked"] = measure(checked, options, checked_pid);
  result["socat"] = measure(socat, options, 0);

  kill_children();
  std::filesystem::remove_all(dir);
  sched_setaffinity(0, sizeof all, &all);
  return result;
}

void print(const nlohmann::json& r) {
  std::printf("\n== %s ==  (proxy idle RSS %ld KiB, under load %ld KiB, peak %ld KiB)\n",
              r["pinned"].get<bool>() ? "pinned to CPU 0" : "unpinned",
              r["proxy_idle_rss_kib"].get<long>(), r["sockhook"]["rss_under_load_kib"].get<long>(),
              r["sockhook"]["rss_peak_kib"].get<long>());
  std::printf("%-24s %12s %12s %12s %12s %14s %13s %15s\n", "metric", "direct", "sockhook",
              "checked", "socat", "sockhook/direct", "sockhook/socat", "checked/sockhook");
  const auto& d = r["direct"];
  const auto& p = r["sockhook"];
  const auto& s = r["socat"];
  const bool has_checked = r.contains("checked");
  auto row = [&](const char* name, const char* key) {
    const double dv = d[key].get<double>();
    const double pv = p[key].get<double>();
    const double sv = s[key].get<double>();
    const double cv = has_checked ? r["checked"][key].get<double>() : 0.0;
    std::printf("%-24s %12.1f %12.1f %12.1f %12.1f %14.2fx %12.2fx %14.2fx\n", name, dv, pv, cv, sv,
                dv > 0 ? pv / dv : 0.0, sv > 0 ? pv / sv : 0.0, pv > 0 ? cv / pv : 0.0);
  };
  row("rtt 64 B p50 (us)", "rtt64_p50_us");
  row("rtt 64 B p99 (us)", "rtt64_p99_us");
  row("rtt 4 KiB p50 (us)", "rtt4k_p50_us");
  row("rtt 4 KiB p99 (us)", "rtt4k_p99_us");
  row("upload (MB/s)", "upload_MBps");
  row("download (MB/s)", "download_MBps");
  row("connections/s", "connections_per_s");
  row("500 clients (ms)", "concurrent500_ms");
  std::printf("%-24s %12d %12d %12d\n", "500 clients ok", d["concurrent500_ok"].get<int>(),
              p["concurrent500_ok"].get<int>(), s["concurrent500_ok"].get<int>());
  std::printf(
      "%-24s %12s %12s %12s\n", "SCM_RIGHTS forwarded", d["scm_rights"].get<bool>() ? "yes" : "no",
      p["scm_rights"].get<bool>() ? "yes" : "no", s["scm_rights"].get<bool>() ? "yes" : "no");
  const double plain = p["cpu_ns_per_byte_plain"].get<double>();
  const double fds = p["cpu_ns_per_byte_fd_after_60k"].get<double>();
  // A failed measurement is kFailed (< 0): say so rather than print it like a tiny figure.
  auto figure = [](double v, bool as_ratio) -> std::string {
    if (v < 0) return "failed";
    char text[32];
    if (as_ratio)
      std::snprintf(text, sizeof text, "%.2fx", v);
    else
      std::snprintf(text, sizeof text, "%.3f", v);
    return text;
  };
  const std::string ratio = plain > 0 && fds >= 0 ? figure(fds / plain, true) : "-";
  std::printf("%-24s %12s %12s  (plain stream %s: %s)\n", "proxy CPU ns/B, fd/60KB", "",
              figure(fds, false).c_str(), figure(plain, false).c_str(), ratio.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // Internal modes: the processes the benchmark starts.
  if (argc == 3 && std::string(argv[1]) == "--serve") return serve(argv[2]);
  if ((argc == 4 || argc == 5) && std::string(argv[1]) == "--relay") {
    sockhook::ProxyOptions options;
    options.connect_path = argv[2];
    options.peer_uid = static_cast<uid_t>(std::stoul(argv[3]));
    if (argc == 5) options.peer_domain = sockhook::DomainCgroup::parse(argv[4]);
    return sockhook::run_proxy(Fd(3), options);
  }

  Options options;
  std::string json_path;
  bool pinned_run = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (arg == "--no-pinned") {
      pinned_run = false;
    } else {
      std::cerr << "usage: proxy_bench [--quick] [--json FILE] [--no-pinned]\n";
      return 2;
    }
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);

  const std::string self = std::filesystem::read_symlink("/proc/self/exe");
  nlohmann::json report;
  report["quick"] = options.quick;
  {
    const BenchDomain domain;
    if (domain.spec().empty())
      std::printf("the checked proxy is left out: %s\n", domain.why_not().c_str());
    report["runs"].push_back(run(self, options, false, domain));
    print(report["runs"].back());
    if (pinned_run) {
      report["runs"].push_back(run(self, options, true, domain));
      print(report["runs"].back());
    }
  }
  if (!json_path.empty()) std::ofstream(json_path) << report.dump(2) << '\n';
  return 0;
}
