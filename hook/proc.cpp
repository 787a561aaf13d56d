#include "proc.hpp"

#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>

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

Fd pidfd_open(pid_t pid) {
  if (pid <= 0) return Fd();
  return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

/// Opens a pidfd for `pid` only if it is still the process that started at `starttime`.
/// The pidfd is taken first and the start time read after: if the pid had been reused in
/// between, the start time would differ, so a match proves the pidfd names our process.
Fd pidfd_if_same(pid_t pid, unsigned long long starttime) {
  Fd fd = pidfd_open(pid);
  if (!fd || starttime == 0 || process_starttime(pid) != starttime) return Fd();
  return fd;
}

/// Processes that hold the socket inode `ino` (/proc/PID/fd/N → "socket:[ino]").
std::vector<pid_t> holders_of_socket(unsigned long long ino) {
  std::vector<pid_t> pids;
  if (ino == 0) return pids;
  auto wanted = "socket:[" + std::to_string(ino) + "]";
  Dir proc(::opendir("/proc"));
  if (!proc) return pids;
  while (auto* e = ::readdir(proc.get())) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == ::getpid()) continue;
    auto fd_dir = "/proc/" + std::string(e->d_name) + "/fd";
    Dir fds(::opendir(fd_dir.c_str()));
    if (!fds) continue;
    while (auto* f = ::readdir(fds.get())) {
      char link[64];
      auto path = fd_dir + "/" + f->d_name;
      auto n = ::readlink(path.c_str(), link, sizeof link - 1);
      if (n > 0 && std::string_view(link, static_cast<std::size_t>(n)) == wanted) {
        pids.push_back(static_cast<pid_t>(pid));
        break;
      }
    }
  }
  return pids;
}

bool qemu_running(const std::string& uuid) {
  Dir proc(::opendir("/proc"));
  if (!proc) return false;
  bool found = false;
  while (auto* e = ::readdir(proc.get())) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    // Arguments are NUL-separated: "-uuid\0<uuid>\0".
    auto needle = std::string("-uuid") + '\0' + uuid;
    if (cmdline.find(needle) != std::string::npos) {
      found = true;
      break;
    }
  }
  return found;
}

}  // namespace sockhook
