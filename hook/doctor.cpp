#include "doctor.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "config.hpp"
#include "error.hpp"
#include "plugin.hpp"
#include "policy.hpp"
#include "qemu_identity.hpp"
#include "sys/file.hpp"
#include "virt.hpp"

namespace sockhook {
namespace {

using Level = Check::Level;

/// A syscall exists if calling it with bad arguments fails with anything but ENOSYS.
bool syscall_exists(long nr) {
  long r = ::syscall(nr, -1, nullptr, nullptr, 0, 0);
  return !(r == -1 && errno == ENOSYS);
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

void check_hook(std::vector<Check>& out) {
  const std::string dropin = "/etc/libvirt/hooks/qemu.d/sockhook";
  const std::string legacy = "/etc/libvirt/hooks/qemu";
  char self[4096] = {};
  auto n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string exe = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : "";
  for (const auto& path : {dropin, legacy}) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    if (!(st.st_mode & S_IXUSR)) {
      out.push_back({Level::kFail, "hook " + path + " is not executable", "chmod 0755 " + path});
      return;
    }
    if (!same_file(path, exe) && path == legacy) continue;  // someone else's hook
    out.push_back({Level::kOk, "hook installed at " + path, ""});
    return;
  }
  out.push_back({Level::kFail, "hook not installed",
                 "run sudo ./install.sh, or: ln -s " + (exe.empty() ? "sockhook" : exe) + " " +
                     dropin + " and reload libvirtd (SIGHUP)"});
}

void check_libvirt(std::vector<Check>& out) {
  try {
    Virt virt("qemu:///system");
    auto v = virt.version();
    auto text = std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." +
                std::to_string(v % 1000);
    out.push_back({Level::kOk, "libvirt " + text, ""});
    if (v < 6005000)
      out.push_back({Level::kWarn, "libvirt " + text + " has no hooks/qemu.d",
                     "the hook must be /etc/libvirt/hooks/qemu"});
  } catch (const Error& e) {
    out.push_back({Level::kWarn, std::string("cannot ask libvirt: ") + e.what(),
                   "start libvirtd (or virtqemud) to check its version"});
  }
}

void check_files(std::vector<Check>& out) {
  try {
    load_config(config_path());
    out.push_back({Level::kOk, "configuration " + config_path() + " is valid", ""});
  } catch (const Error& e) {
    out.push_back({Level::kFail, e.what(), "fix or remove the file"});
  }
  try {
    auto policy = load_policy(policy_path());
    out.push_back({Level::kOk,
                   "policy " + policy_path() + " is valid (" +
                       std::to_string(policy.rules().size()) + " rules)",
                   ""});
  } catch (const Error& e) {
    out.push_back({Level::kFail, e.what(), "chown root:root and chmod 0644 it, or fix its syntax"});
  }
  auto plugins = load_plugins(default_plugin_dirs(), {0});
  for (const auto& p : plugins.problems) out.push_back({Level::kWarn, p, ""});
  for (const auto& [name, why] : plugins.refused) out.push_back({Level::kFail, why, ""});
  if (plugins.plugins.empty()) {
    out.push_back({Level::kFail, "no plugins installed", "run sudo ./install.sh"});
  } else {
    std::string names;
    for (const auto& [name, p] : plugins.plugins) names += (names.empty() ? "" : ", ") + name;
    out.push_back({Level::kOk, "plugins: " + names, ""});
  }
  try {
    auto id = resolve_qemu_identity(std::nullopt, load_qemu_conf());
    out.push_back({Level::kOk,
                   "QEMU runs as " + id.user + ":" + id.group + " (uid " + std::to_string(id.uid) +
                       ", from " + id.source + ")",
                   ""});
  } catch (const Error& e) {
    out.push_back({Level::kFail, e.what(), "set user and group in /etc/libvirt/qemu.conf"});
  }
}

void check_kernel(std::vector<Check>& out) {
  out.push_back(syscall_exists(SYS_openat2)
                    ? Check{Level::kOk, "kernel has openat2 (safe path resolution)", ""}
                    : Check{Level::kFail, "kernel lacks openat2 (Linux 5.6)",
                            "sockhook needs Linux 5.6 or newer"});
  out.push_back(syscall_exists(SYS_open_tree) && syscall_exists(SYS_move_mount)
                    ? Check{Level::kOk, "kernel has open_tree and move_mount", ""}
                    : Check{Level::kWarn, "kernel lacks open_tree/move_mount (Linux 5.2)",
                            "bind uses the /proc/self/fd fallback"});
  // ACLs on /run: a tmpfs needs CONFIG_TMPFS_POSIX_ACL.
  char tmpl[] = "/run/.sockhook-acl-XXXXXX";
  Fd fd(::mkostemp(tmpl, O_CLOEXEC));
  if (fd) {
    ::unlink(tmpl);
    bool ok = ::fgetxattr(fd.get(), "system.posix_acl_access", nullptr, 0) >= 0 || errno == ENODATA;
    out.push_back(ok ? Check{Level::kOk, "/run supports POSIX ACLs", ""}
                     : Check{Level::kWarn, "/run does not support POSIX ACLs",
                             "bind lends of sockets with restrictive modes and method acl fail"});
  }
}

void check_confinement(std::vector<Check>& out) {
  struct stat st {};
  if (::stat("/sys/kernel/security/apparmor", &st) == 0) {
    out.push_back(
        {Level::kWarn, "AppArmor is active",
         "allow QEMU the lend directory: add\n"
         "      /run/sockhook/** rw,\n"
         "    to /etc/apparmor.d/local/abstractions/libvirt-qemu (Debian 12) or a file in "
         "/etc/apparmor.d/abstractions/libvirt-qemu.d/ (libvirt >= 9.6), then reload "
         "AppArmor"});
  } else {
    out.push_back({Level::kOk, "AppArmor is not active", ""});
  }
  if (::stat("/sys/fs/selinux/enforce", &st) == 0) {
    out.push_back({Level::kWarn, "SELinux is present",
                   "bind-mounted sockets keep their label (user_tmp_t); if QEMU is denied, use "
                   "method proxy or allow svirt_t to connect to user_tmp_t sockets"});
  } else {
    out.push_back({Level::kOk, "SELinux is not present", ""});
  }
}

}  // namespace

std::vector<Check> check_host() {
  std::vector<Check> out;
  check_hook(out);
  check_libvirt(out);
  check_files(out);
  check_kernel(out);
  check_confinement(out);
  return out;
}

int print_checks(const std::vector<Check>& checks) {
  int status = 0;
  for (const auto& c : checks) {
    const char* tag = c.level == Level::kOk ? "ok  " : c.level == Level::kWarn ? "warn" : "FAIL";
    std::printf("%s  %s\n", tag, c.what.c_str());
    if (!c.advice.empty() && c.level != Level::kOk) std::printf("      %s\n", c.advice.c_str());
    if (c.level == Level::kFail) status = 1;
  }
  return status;
}

}  // namespace sockhook
