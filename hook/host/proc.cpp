#include "host/proc.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>

#include <pugixml.hpp>

#include "base/error.hpp"
#include "sys/file.hpp"

namespace sockhook {

namespace {

/// The fields of /proc/PID/stat after the command name, from field 3 on ("" if none).
std::string stat_fields(pid_t pid) {
  if (pid <= 0) return "";
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return "";
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() ? "" : line.substr(close + 2);
}

}  // namespace

unsigned long long process_starttime(pid_t pid) {
  std::istringstream fields(stat_fields(pid));
  std::string field;
  // Field 3 is the first after ')'; field 22 is the 20th from there.
  for (int i = 3; i <= 22; ++i)
    if (!(fields >> field)) return 0;
  return std::stoull(field);
}

char process_state(pid_t pid) {
  auto fields = stat_fields(pid);
  return fields.empty() ? 0 : fields[0];
}

/// Opens a pidfd for `pid` only if it is still the process that started at `starttime`.
/// The pidfd is taken first and the start time read after: if the pid had been reused in
/// between, the start time would differ, so a match proves the pidfd names our process.
Fd pidfd_if_same(pid_t pid, unsigned long long starttime) {
  Fd fd = pidfd_open(pid);
  if (!fd || starttime == 0 || process_starttime(pid) != starttime) return Fd();
  return fd;
}

namespace {

/// True if `st` is root's and only root can write it.
bool root_only_writable(const struct stat& st) {
  return st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/// The pid libvirt recorded for the running domain `uuid` in its status file `name` (in
/// `dir`), or 0. The file must be root's and writable by root only.
pid_t status_file_pid(const Fd& dir, const std::string& name, const std::string& uuid,
                      struct stat& st) {
  Fd fd(::openat(dir.get(), name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || !root_only_writable(st))
    return 0;
  auto read = value_or_none([&] { return read_all(fd, kMaxStatusFileBytes); });
  if (!read) return 0;
  const auto& text = *read;
  pugi::xml_document doc;
  if (!doc.load_buffer(text.data(), text.size())) return 0;
  auto status = doc.child("domstatus");
  auto recorded = std::string(status.child("domain").child_value("uuid"));
  if (recorded.size() != uuid.size() ||
      !std::equal(recorded.begin(), recorded.end(), uuid.begin(),
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
    return 0;
  return static_cast<pid_t>(status.attribute("pid").as_int(0));
}

/// The wall-clock second at which `pid` started (boot time + start ticks), or 0.
long long start_wall_time(pid_t pid) {
  auto ticks = process_starttime(pid);
  if (ticks == 0) return 0;
  std::ifstream stat("/proc/stat");
  std::string key;
  long long boot = 0;
  while (stat >> key)
    if (key == "btime" && (stat >> boot)) break;
  const long hz = ::sysconf(_SC_CLK_TCK);
  if (boot == 0 || hz <= 0) return 0;
  return boot + static_cast<long long>(ticks / static_cast<unsigned long long>(hz));
}

}  // namespace

bool qemu_running(const std::string& uuid, const std::string& status_dir) {
  // libvirt's own record, which only root writes: a process anyone can start with
  // "-uuid <uuid>" in its arguments proves nothing by itself. The directory is root's under
  // libvirt 9, but libvirt 11 (Debian 13) gives it to QEMU's user, 0755 (measured). Its owner
  // may then rename or remove the files in it, never write one as root: what is believed rests
  // on each file being root's and root-only, on what it says and on the live process it names
  // (a removed file makes a running domain look stopped, and cleanup --stale then asks libvirt
  // before it releases anything). Group or other write is refused all the same.
  Fd dir(::open(status_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  struct stat dst {};
  if (!dir || ::fstat(dir.get(), &dst) != 0 || (dst.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return false;
  auto names = value_or_none([&] { return list_directory(dir); });
  if (!names) return false;
  for (const auto& name : *names) {
    if (!name.ends_with(".xml")) continue;
    struct stat st {};
    const pid_t pid = status_file_pid(dir, name, uuid, st);
    if (pid <= 0) continue;
    char state = process_state(pid);
    if (state == 0 || state == 'Z' || state == 'X') continue;
    // The pid is QEMU's only if that process started before libvirt last wrote the file
    // (libvirt writes it after QEMU started): a later process reuses a stale record's pid.
    auto started = start_wall_time(pid);
    if (started == 0 || started > static_cast<long long>(st.st_mtim.tv_sec) + 1) continue;
    // And it is a QEMU for this domain.
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    if (cmdline.find(std::string("-uuid") + '\0' + uuid) != std::string::npos) return true;
  }
  return false;
}

namespace {

#ifndef SO_PEERPIDFD
constexpr int SO_PEERPIDFD = 77;  // Linux 6.5; older headers lack it
#endif

/// Whether the process behind `pidfd` has not exited (EPERM: it lives, as another user).
bool pidfd_alive(int pidfd) { return pidfd_signal(pidfd, 0) == 0 || errno == EPERM; }

}  // namespace

SocketPeer read_socket_peer(int sock, bool kernel_pidfd) {
  SocketPeer peer;
  ucred cred{};
  socklen_t len = sizeof cred;
  // SO_PEERCRED is set by the kernel at connect() and cannot be forged by the client.
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    peer.problem = "cannot read its credentials";
    return peer;
  }
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  if (cred.pid <= 0) {
    peer.problem = "the kernel gave no pid for it";
    return peer;
  }
  Fd pidfd;
  if (kernel_pidfd) {
    int fd = -1;
    len = sizeof fd;
    if (::getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0) {
      pidfd = Fd(fd);
    } else if (errno != ENOPROTOOPT && errno != EINVAL) {
      peer.problem = errno == ESRCH ? "it exited" : "cannot take a pidfd of it";
      return peer;
    }
  }
  if (!pidfd) pidfd = pidfd_open(cred.pid);
  if (!pidfd) {
    peer.problem = "it exited";
    return peer;
  }
  // The kernel's text, at most 64 KiB; hidepid or an exited process makes it unreadable.
  auto cgroup =
      attempt([&] { return read_file("/proc/" + std::to_string(cred.pid) + "/cgroup", 65536); });
  if (!cgroup) {
    peer.problem = cgroup.what();
    return peer;
  }
  peer.cgroup = std::move(*cgroup.value);
  // Still alive after the read: the pid was this process's all along, so the text is its.
  if (!pidfd_alive(pidfd.get())) {
    peer.cgroup.clear();
    peer.problem = "it exited while it was checked";
  }
  return peer;
}

}  // namespace sockhook
