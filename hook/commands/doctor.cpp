#include "commands/doctor.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "base/error.hpp"
#include "host/confinement.hpp"
#include "host/proc.hpp"
#include "host/qemu_identity.hpp"
#include "host/virt.hpp"
#include "model/config.hpp"
#include "model/plugin.hpp"
#include "model/policy.hpp"
#include "plan/gather.hpp"
#include "plan/pipeline.hpp"
#include "plan/plan.hpp"
#include "sys/creds.hpp"
#include "sys/fd.hpp"
#include "sys/file.hpp"
#include "sys/trust.hpp"

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
  const std::string exe = self_exe_path().value_or("");
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

void check_libvirt(const LibvirtFacts& facts, std::vector<Check>& out) {
  if (!facts.installed) {
    out.push_back({Level::kFail, "libvirt is not installed (no libvirtd or virtqemud)",
                   "install libvirt: apt install libvirt-daemon-system qemu-system-x86 "
                   "(Debian, Ubuntu), dnf install libvirt-daemon-kvm (Fedora); the hook runs "
                   "once libvirt does"});
    return;
  }
  auto version = attempt([] { return Virt("qemu:///system").version(); });
  if (!version) {
    out.push_back({Level::kWarn, "cannot ask libvirt: " + version.what(),
                   "start libvirtd (or virtqemud) to check its version"});
    return;
  }
  auto v = *version.value;
  auto text = std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." +
              std::to_string(v % 1000);
  out.push_back({Level::kOk, "libvirt " + text, ""});
  if (v < 6005000)
    out.push_back({Level::kWarn, "libvirt " + text + " has no hooks/qemu.d",
                   "the hook must be /etc/libvirt/hooks/qemu"});
}

void check_files(const LibvirtFacts& facts, std::vector<Check>& out) {
  auto config = attempt([] { return load_config(config_path()); });
  out.push_back(config ? Check{Level::kOk, "configuration " + config_path() + " is valid", ""}
                       : Check{Level::kFail, config.what(), "fix or remove the file"});
  auto policy = attempt([] { return load_policy(policy_path()); });
  out.push_back(policy ? Check{Level::kOk,
                               "policy " + policy_path() + " is valid (" +
                                   std::to_string(policy.value->rules().size()) + " rules)",
                               ""}
                       : Check{Level::kFail, policy.what(),
                               "chown root:root and chmod 0644 it, or fix its syntax"});
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
  out.push_back(
      qemu_user_check(facts, [] { return resolve_qemu_identity(std::nullopt, load_qemu_conf()); }));
}

/// Whether `user` has lingering on: logind creates their runtime directory and starts their
/// services (PipeWire, say) at boot, before any login.
bool lingers(const User& user) {
  struct stat st {};
  return ::stat(("/var/lib/systemd/linger/" + user.name).c_str(), &st) == 0;
}

/// autostart_checks for each domain libvirt starts at boot.
void check_autostart(std::vector<Check>& out) {
  std::unique_ptr<Virt> virt;
  auto uuids = attempt([&] {
    virt = std::make_unique<Virt>("qemu:///system");
    return virt->autostarted();
  });
  if (!uuids) return;  // check_libvirt has said why libvirt cannot be asked
  for (const auto& uuid : *uuids.value) {
    auto checked = attempt([&] {
      Gathered g;
      g.domain = parse_domain_xml(virt->xml_of(uuid, true));
      if (!g.domain.has_metadata) return;
      GatherOptions options;
      for (auto& c : autostart_checks(gather_and_plan(g, options), lingers))
        out.push_back(std::move(c));
    });
    if (!checked)
      out.push_back({Level::kWarn, "autostart: " + uuid + ": cannot check: " + checked.what(), ""});
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

}  // namespace

LibvirtFacts probe_libvirt() {
  LibvirtFacts facts;
  for (const char* dir : {"/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"})
    for (const char* daemon : {"libvirtd", "virtqemud"})
      if (::access((std::string(dir) + "/" + daemon).c_str(), X_OK) == 0) facts.installed = true;
  return facts;
}

Check qemu_user_check(const LibvirtFacts& facts, const std::function<QemuIdentity()>& resolve) {
  auto id = attempt(resolve);
  if (id)
    return {Level::kOk,
            "QEMU runs as " + id.value->text() +
                "; a DAC label naming another identity needs 'sockhook policy allow --qemu'",
            ""};
  // Without libvirt there is neither QEMU's user nor a qemu.conf to set it in.
  if (!facts.installed)
    return {Level::kFail, id.what() + " (libvirt is not installed)",
            "install libvirt (its package creates QEMU's user)"};
  return {Level::kFail, id.what(), "set user and group in /etc/libvirt/qemu.conf"};
}

std::vector<Check> autostart_checks(const Plan& plan,
                                    const std::function<bool(const User&)>& lingers) {
  std::vector<Check> out;
  for (const auto& s : plan.sockets) {
    auto runtime_dir = "/run/user/" + std::to_string(s.owner.uid) + "/";
    // A plugin's absolute path outside the runtime directory may exist at boot.
    if (!s.source.starts_with(runtime_dir) || lingers(s.owner)) continue;
    auto method = s.request.method;
    bool needs_socket =
        method == Method::kBind || method == Method::kAcl || method == Method::kGroup;
    std::string what =
        "autostart: " + plan.domain + ": " + s.request.name + ": " + s.source +
        " cannot exist at boot, before " + s.owner.name + " logs in: " +
        (needs_socket
             ? std::string("method ") + std::string(to_string(method)) + " needs it at start, so " +
                   (s.request.required ? "the VM does not autostart"
                                       : "the VM autostarts without this lend")
             : std::string("the proxy reaches it only once ") + s.owner.name +
                   "'s server runs (a QEMU audio backend that needs its server at "
                   "start, such as pa, fails)");
    out.push_back({Level::kWarn, what,
                   "loginctl enable-linger " + s.owner.name +
                       " (the owner's session and servers start at boot), or virsh autostart "
                       "--disable '" +
                       plan.domain + "'"});
  }
  return out;
}

std::vector<Check> check_host() {
  std::vector<Check> out;
  auto libvirt = probe_libvirt();
  check_hook(out);
  check_libvirt(libvirt, out);
  check_files(libvirt, out);
  if (libvirt.installed) check_autostart(out);
  check_kernel(out);
  for (auto& c : check_confinement()) out.push_back(std::move(c));
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

// ---- doctor DOMAIN ----

namespace sockhook {
namespace {

/// Whether `uid`/`gid` (with the supplementary groups QEMU would get) can search every
/// directory in `dirs`, tested for real in a child that takes that identity (so ACLs count).
/// nullopt if we cannot tell (not root). Returns the first directory it cannot search, or "".
std::optional<std::string> first_unsearchable(const QemuIdentity& qemu,
                                              const std::vector<std::string>& dirs) {
  if (::geteuid() != 0) return std::nullopt;
  // Become QEMU's user as libvirt does: its groups are computed at every spawn.
  std::vector<gid_t> groups(256);
  int n = static_cast<int>(groups.size());
  if (::getgrouplist(qemu.user.c_str(), qemu.gid, groups.data(), &n) < 0) n = 0;
  groups.resize(static_cast<std::size_t>(n));
  auto ran = value_or_none([&] {
    return run_as_user(
        qemu.uid, qemu.gid,
        [&](int out) {
          for (std::size_t i = 0; i < dirs.size(); ++i) {
            if (::access(dirs[i].c_str(), X_OK) != 0) {
              auto idx = static_cast<unsigned char>(i);
              (void)!::write(out, &idx, 1);
              return 1;
            }
          }
          return 0;
        },
        1, 5000, groups);
  });
  if (!ran) return std::nullopt;
  const auto& child = *ran;
  if (child.status != 0 && child.status != 1) return std::nullopt;
  if (child.status == 0) return std::string();
  std::size_t idx = child.output.size() == 1 ? static_cast<unsigned char>(child.output[0]) : 255u;
  return idx < dirs.size() ? dirs[idx] : std::string("?");
}

std::string mode_text(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", m & 07777);
  return buf;
}

void check_lend_root(const Plan& plan, const Paths& paths, bool running, std::vector<Check>& out) {
  struct stat st {};
  std::vector<std::string> dirs{"/run"};
  if (::stat(paths.lend_root.c_str(), &st) == 0) {
    dirs.push_back(paths.lend_root);
    if (auto problem = trust_problem(st))
      out.push_back(
          {Level::kFail,
           paths.lend_root + " is refused: " + *problem + " (mode " + mode_text(st.st_mode) + ")",
           "chown root:root " + paths.lend_root + " && chmod go-w " + paths.lend_root});
  }
  auto blocked = first_unsearchable(plan.qemu, dirs);
  if (!blocked) {
    out.push_back({Level::kWarn,
                   "cannot test whether " + plan.qemu.user + " reaches " + paths.lend_root +
                       " (run doctor as root)",
                   ""});
  } else if (!blocked->empty()) {
    out.push_back(
        {Level::kFail,
         "QEMU's user " + plan.qemu.user + " cannot search " + *blocked + ", so it cannot reach " +
             plan.lend_dir,
         "chmod o+x " + *blocked + " (or setfacl -m u:" + plan.qemu.user + ":x " + *blocked + ")"});
  } else {
    out.push_back({Level::kOk,
                   "QEMU's user " + plan.qemu.user + " can reach " +
                       (dirs.size() > 1 ? paths.lend_root : std::string("/run")) +
                       (dirs.size() > 1 ? "" : " (" + paths.lend_root + " is created at start)"),
                   ""});
  }
  if (!plan.lend_dir.empty() && !running && ::stat(plan.lend_dir.c_str(), &st) == 0)
    out.push_back({Level::kWarn,
                   "a lend directory " + plan.lend_dir + " exists but the domain is not running",
                   "sockhook cleanup " + plan.domain});
}

/// The WirePlumber drop-ins that load sockhook's rules: install.sh's, then the package's.
constexpr const char* kWirePlumberDropins[] = {
    "/etc/wireplumber/wireplumber.conf.d/sockhook.conf",
    "/usr/share/wireplumber/wireplumber.conf.d/sockhook.conf"};

/// When the system booted, in seconds since the epoch (/proc/stat btime); 0 if unknown.
long long boot_time() {
  std::FILE* f = std::fopen("/proc/stat", "re");
  if (!f) return 0;
  long long btime = 0;
  char line[256];
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "btime %lld", &btime) == 1) break;
  std::fclose(f);
  return btime;
}

/// Method context: does the owner's running WirePlumber have sockhook's rules? Without them
/// the VM's client gets nothing (the lend fails closed), so this is a warning, not a failure.
void check_context_rules(const SocketPlan& s, std::vector<Check>& out) {
  const auto& name = s.request.name;
  struct stat rules {};
  const char* dropin = nullptr;
  for (const char* d : kWirePlumberDropins)
    if (::stat(d, &rules) == 0) {
      dropin = d;
      break;
    }
  if (!dropin) {
    out.push_back({Level::kWarn,
                   name + ": no WirePlumber rules for context lends: the VM's client would get "
                          "nothing",
                   "install sockhook with install.sh or its Debian package"});
    return;
  }
  // The owner's WirePlumber processes, and when each started.
  long long btime = boot_time();
  long ticks = ::sysconf(_SC_CLK_TCK);
  bool found = false;
  bool stale = false;
  if (Fd proc{::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC)}) {
    if (DIR* d = ::fdopendir(::dup(proc.get()))) {
      while (auto* e = ::readdir(d)) {
        char* end = nullptr;
        long pid = std::strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0) continue;
        struct stat pst {};
        if (::fstatat(proc.get(), e->d_name, &pst, 0) != 0 || pst.st_uid != s.owner.uid) continue;
        auto comm = "/proc/" + std::string(e->d_name) + "/comm";
        std::FILE* f = std::fopen(comm.c_str(), "re");
        if (!f) continue;
        char buf[32] = {};
        bool wp = std::fgets(buf, sizeof buf, f) && std::string(buf) == "wireplumber\n";
        std::fclose(f);
        if (!wp) continue;
        found = true;
        auto started = btime + static_cast<long long>(
                                   process_starttime(static_cast<pid_t>(pid)) /
                                   static_cast<unsigned long long>(ticks > 0 ? ticks : 100));
        stale |= btime > 0 && started < static_cast<long long>(rules.st_mtime);
      }
      ::closedir(d);
    }
  }
  if (!found) {
    out.push_back({Level::kWarn,
                   name + ": " + s.owner.name +
                       " runs no WirePlumber now; the VM's client gets "
                       "nothing until one runs with " +
                       dropin,
                   ""});
  } else if (stale) {
    out.push_back({Level::kWarn,
                   name + ": " + s.owner.name + "'s WirePlumber started before " + dropin +
                       " was written, so it lacks the rules: the VM's client would get nothing",
                   "as " + s.owner.name + ": systemctl --user restart wireplumber"});
  } else {
    out.push_back({Level::kOk,
                   name + ": " + s.owner.name + "'s WirePlumber started after " + dropin +
                       " was written: context lends get playback" +
                       (s.request.capture ? " and capture" : " only"),
                   ""});
  }
}

void check_source(const SocketPlan& s, std::vector<Check>& out) {
  const auto& name = s.request.name;
  if (!s.source_note.empty()) out.push_back({Level::kOk, name + ": found " + s.source_note, ""});
  auto runtime_dir = s.source.substr(0, s.source.find('/', std::string("/run/user/").size()));
  struct stat rst {};
  if (s.source.starts_with("/run/user/") && ::stat(runtime_dir.c_str(), &rst) == 0 &&
      rst.st_uid != s.owner.uid) {
    out.push_back({Level::kFail,
                   name + ": " + runtime_dir + " is not owned by " + s.owner.name +
                       " (S2: sockhook lends only from the owner's own runtime directory)",
                   ""});
    return;
  }
  struct stat st {};
  bool waits = s.method == Method::kBind || s.method == Method::kAcl || s.method == Method::kGroup;
  if (::lstat(s.source.c_str(), &st) != 0) {
    if (errno == EACCES) {
      out.push_back(
          {Level::kWarn, name + ": cannot look at " + s.source + " (run doctor as root)", ""});
    } else if (!waits) {
      out.push_back(
          {Level::kOk,
           name + ": " + s.source + " does not exist now; the proxy connects when it appears", ""});
    } else {
      out.push_back(
          {s.request.required ? Level::kFail : Level::kWarn,
           name + ": " + s.source + " does not exist now, and method " +
               std::string(to_string(s.method)) + " needs it at start" +
               (s.request.required ? " (the VM would not start)" : " (the lend would be skipped)"),
           "start " + s.owner.name + "'s server first, or use method auto or proxy"});
    }
    return;
  }
  if (!S_ISSOCK(st.st_mode)) {
    out.push_back({Level::kFail, name + ": " + s.source + " is not a socket", ""});
  } else if (st.st_uid != s.owner.uid) {
    out.push_back({Level::kFail,
                   name + ": " + s.source + " is owned by uid " + std::to_string(st.st_uid) +
                       ", not by " + s.owner.name,
                   "sockhook lends only sockets that belong to the owner (S1)"});
  } else {
    out.push_back({Level::kOk,
                   name + ": " + s.source + " is " + s.owner.name + "'s socket (" +
                       std::string(to_string(s.method)) + ")",
                   ""});
  }
  // WirePlumber's rules restrict a PipeWire context; a compositor restricts its own.
  if (s.method == Method::kContext && !makes_wayland_context(s.steps)) check_context_rules(s, out);
}

}  // namespace

std::vector<Check> check_domain(const DomainCheckOptions& o) {
  std::vector<Check> out;
  Gathered g;
  bool running = false;
  auto parsed = attempt([&] {
    std::string xml;
    if (!o.file.empty()) {
      xml = read_domain_xml(o.file);
    } else {
      Virt virt(o.connect);
      running = virt.is_active(o.domain);
      // Before a start, the persistent definition is what will run.
      xml = virt.xml_of(o.domain, !running);
    }
    g.domain = parse_domain_xml(xml);
  });
  if (!parsed) {
    out.push_back({Level::kFail, parsed.what(), ""});
    return out;
  }
  const auto& name = g.domain.name;
  if (!g.domain.has_metadata && g.domain.diagnostics.empty()) {
    out.push_back({Level::kWarn, name + " has no sockhook metadata: nothing to lend",
                   "sockhook annotate " + name + " --plugin PLUGIN --owner USER"});
    return out;
  }
  check_hook(out);
  GatherOptions options;
  auto planned = attempt([&] { return gather_and_plan(g, options); });
  if (!planned) {
    out.push_back({Level::kFail, planned.what(), ""});
    return out;
  }
  const Plan& plan = *planned.value;
  // Who receives the lends, and by which of root's rules (issue 9).
  bool refused = plan.qemu_decision.verdict == IdentityVerdict::kRefused;
  out.push_back({refused ? Level::kFail : Level::kOk,
                 "QEMU runs as " + plan.qemu.text() + ": " + plan.qemu_decision.text(),
                 refused ? "sockhook policy allow --domain " + plan.uuid + " --qemu " +
                               plan.qemu.user + ":" + plan.qemu.group
                         : ""});
  for (auto& c : check_plan(plan)) out.push_back(std::move(c));
  if (!plan.sockets.empty()) check_lend_root(plan, options.paths, running, out);
  // AppArmor and SELinux as they stand for this domain; plan's warnings above already say
  // what acl and group need on an AppArmor host.
  for (auto& c : check_confinement()) out.push_back(std::move(c));
  return out;
}

std::vector<Check> check_plan(const Plan& plan) {
  std::vector<Check> out;
  // The planner's hints are shown as advice.
  auto line = [](const Problem& p) {
    return p.socket.empty() ? p.message : p.socket + ": " + p.message;
  };
  for (const auto& e : plan.errors) out.push_back({Level::kFail, line(e), e.hint});
  for (const auto& w : plan.warnings) out.push_back({Level::kWarn, line(w), w.hint});
  for (const auto& s : plan.sockets) {
    out.push_back(
        {Level::kOk,
         s.request.name + ": policy allows " + s.owner.name + " to lend '" + s.request.plugin + "'",
         ""});
    for (const auto& e : s.env)
      if (e.provided)
        out.push_back({Level::kOk,
                       s.request.name + ": QEMU gets " + e.name + " (" + e.provided_by + ")", ""});
    for (const auto& w : s.warnings)
      out.push_back({Level::kWarn, s.request.name + ": " + line(w), w.hint});
    check_source(s, out);
    // S9: what the server does not restrict, said where the owner checks the domain.
    if (!s.reach.empty()) out.push_back({Level::kWarn, reach_line(s.request.name, s.reach), ""});
  }
  return out;
}

}  // namespace sockhook
