#include "host/confinement.hpp"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include "base/error.hpp"
#include "base/split.hpp"
#include "sys/file.hpp"

namespace sockhook {
namespace {

namespace fs = std::filesystem;
using Level = Check::Level;

constexpr std::size_t kMaxProfileBytes = 1024 * 1024;
/// The per-VM rule's path, as dist/apparmor/sockhook writes it.
constexpr std::string_view kPerVmPath = "/run/sockhook/@{profile_name}/";

std::string installer_hint() {
  return "run " SOCKHOOK_APPARMOR_DIR "/sockhook-apparmor install (sudo ./install.sh does)";
}

/// One AppArmor policy file, split into include targets and rule lines.
struct PolicyFile {
  std::string path;
  bool exists = false;
  std::vector<std::string> includes;  ///< names inside <...>, relative to /etc/apparmor.d
  std::vector<std::string> rules;     ///< other non-comment lines, trimmed
};

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

PolicyFile read_policy(const std::string& path) {
  PolicyFile f{path, false, {}, {}};
  auto text = try_read_file(path, kMaxProfileBytes);
  if (!text) return f;
  f.exists = true;
  // "#include <x>", "include <x>", "include if exists <x>" (AppArmor 3 and 4 accept all).
  static const std::regex include(R"(^#?include\s+(?:if\s+exists\s+)?<([^>]+)>)");
  for (auto raw : split(*text, '\n')) {
    auto line = trim(std::string(raw));
    std::smatch m;
    if (std::regex_search(line, m, include)) {
      f.includes.push_back(m[1]);
    } else if (!line.empty() && line.front() != '#') {
      // A trailing comment is not part of the rule.
      f.rules.push_back(trim(line.substr(0, line.find(" #"))));
    }
  }
  return f;
}

bool includes(const PolicyFile& f, std::string_view name) {
  return std::any_of(f.includes.begin(), f.includes.end(), [&](const std::string& i) {
    return i == name || i == std::string(name) + "/";
  });
}

/// The files AppArmor reads for an included directory: it skips dotfiles and package
/// managers' leftovers.
std::vector<std::string> directory_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    auto name = e.path().filename().string();
    if (name.starts_with('.') || name.ends_with('~') || name.find(".dpkg-") != std::string::npos ||
        name.ends_with(".rpmnew") || name.ends_with(".rpmsave"))
      continue;
    if (e.is_regular_file(ec)) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Every file that `f` includes, directly or through other includes (a few levels deep).
void collect(const std::string& aa, const PolicyFile& f, int depth, std::set<std::string>& seen,
             std::vector<PolicyFile>& out) {
  if (depth > 4) return;
  for (const auto& name : f.includes) {
    if (name.starts_with("tunables/") || name.starts_with("abi/")) continue;
    auto path = aa + "/" + name;
    std::error_code ec;
    std::vector<std::string> files =
        fs::is_directory(path, ec) ? directory_files(path) : std::vector<std::string>{path};
    for (const auto& file : files) {
      if (!seen.insert(file).second) continue;
      auto sub = read_policy(file);
      if (!sub.exists) continue;
      out.push_back(sub);
      collect(aa, sub, depth + 1, seen, out);
    }
  }
}

/// A rule that lets this VM's QEMU read and write entries of its own lend directory.
bool is_per_vm_rule(const std::string& rule) {
  auto at = rule.find(kPerVmPath);
  if (at == std::string::npos || rule.starts_with("deny") || rule.starts_with("owner"))
    return false;
  auto rest = rule.substr(at + kPerVmPath.size());
  auto space = rest.find_first_of(" \t");
  if (space == std::string::npos || !rest.starts_with("*")) return false;
  auto perms = rest.substr(space);
  return perms.find('r') != std::string::npos && perms.find('w') != std::string::npos;
}

/// A rule that names /run/sockhook without the VM's own directory: it reaches other VMs'.
bool is_shared_rule(const std::string& rule) {
  if (rule.starts_with("deny")) return false;
  auto at = rule.find("/run/sockhook/");
  if (at == std::string::npos) return false;
  return rule.compare(at, kPerVmPath.size(), kPerVmPath) != 0;
}

/// The hook's rules in a libvirt daemon's profile: dist/apparmor/sockhook-libvirtd.
bool is_hook_mount_rule(const std::string& rule) {
  return rule.starts_with("mount") && rule.find("move") != std::string::npos &&
         rule.find("-> /run/sockhook/libvirt-*/*") != std::string::npos;
}

/// The mode a loaded profile is in ("enforce", "complain", ...), from the kernel's list, or
/// empty when `name` is not loaded.
std::string loaded_profile_mode(const std::string& base, const std::string& name) {
  auto list = try_read_file(base + "/sys/kernel/security/apparmor/profiles", kMaxProfileBytes);
  if (!list) return "";
  for (auto raw : split(*list, '\n')) {
    std::string line(raw);
    auto open = line.rfind(" (");
    if (open == std::string::npos || line.substr(0, open) != name) continue;
    return line.substr(open + 2, line.size() - open - 3);
  }
  return "";
}

/// The hook runs inside the libvirt daemon's own profile (`/etc/libvirt/hooks/** rmix`), which
/// lets it move mounts only under /run/libvirt/qemu: without sockhook's block in the daemon's
/// local file, every bind lend is refused (LIBVIRT-NOTES, "An enforcing AppArmor kernel").
void check_daemon_rules(const std::string& root, const std::string& aa, std::vector<Check>& out) {
  const auto base = root == "/" ? std::string() : root;
  for (const std::string daemon : {"libvirtd", "virtqemud"}) {
    const auto profile_path = aa + "/usr.sbin." + daemon;
    auto profile = read_policy(profile_path);
    if (!profile.exists) continue;
    const auto local = "local/usr.sbin." + daemon;
    auto mode = loaded_profile_mode(base, daemon);
    if (mode.empty()) mode = loaded_profile_mode(base, "/usr/sbin/" + daemon);
    const auto confined = mode.empty()
                              ? daemon + "'s profile is not loaded now"
                              : "the hook runs inside " + daemon + "'s profile (" + mode + ")";
    auto rules = read_policy(aa + "/" + local);
    bool has = includes(profile, local) &&
               std::any_of(rules.rules.begin(), rules.rules.end(), is_hook_mount_rule);
    if (has) {
      out.push_back({Level::kOk,
                     "AppArmor: " + confined + ", and " + aa + "/" + local +
                         " lets it mount in /run/sockhook/libvirt-*/ (bind lends)",
                     ""});
    } else {
      out.push_back({mode.empty() ? Level::kWarn : Level::kFail,
                     "AppArmor: " + confined + ", and " + aa + "/" + local +
                         " lacks sockhook's mount rules, so the kernel refuses every bind lend",
                     installer_hint()});
    }
  }
}

}  // namespace

std::string original_path_apparmor_warning(const std::string& method, const std::string& path) {
  return "method " + method + " points QEMU at the original path " + path +
         "; on an AppArmor host QEMU's profile needs the rule '" + path +
         " rw,' (in /etc/apparmor.d/abstractions/libvirt-qemu.d/, or "
         "local/abstractions/libvirt-qemu on Debian 12), and that rule reaches every VM: "
         "AppArmor tells VMs apart only by their lend directories (use method bind or proxy "
         "to keep the socket to this VM)";
}

std::string original_path_apparmor_refusal(const std::string& method, const std::string& path) {
  return "cannot lend with method " + method + ": it points QEMU at " + path +
         ", which the kernel's AppArmor profile for this VM does not let QEMU reach, and a rule "
         "that did would reach every VM";
}

bool libvirt_confines_with_apparmor(const std::string& root) {
  const auto base = root == "/" ? std::string() : root;
  std::error_code ec;
  return apparmor_enabled(root) && fs::exists(base + "/etc/apparmor.d/libvirt/TEMPLATE.qemu", ec);
}

bool apparmor_mediates_unix_sockets(const std::string& root) {
  const auto base = root == "/" ? std::string() : root;
  const auto features = base + "/sys/kernel/security/apparmor/features";
  std::error_code ec;
  if (!fs::exists(features + "/network_v9/af_unix", ec) &&
      !fs::exists(features + "/network/af_unix", ec))
    return false;
  // Debian pins the features policy is compiled against (parser.conf: policy-features=FILE):
  // what the pinned set lacks is not enforced, whatever the kernel offers. Unreadable: unsure,
  // so not mediated (doctor then warns rather than reassures).
  auto conf = try_read_file(base + "/etc/apparmor/parser.conf", kMaxProfileBytes);
  if (!conf) return true;
  for (auto raw : split(*conf, '\n')) {
    auto line = trim(std::string(raw));
    if (!line.starts_with("policy-features=")) continue;
    auto pinned = try_read_file(base + trim(line.substr(16)), kMaxProfileBytes);
    return pinned && pinned->find("af_unix") != std::string::npos;
  }
  return true;
}

bool apparmor_enabled(const std::string& root) {
  auto enabled = try_read_file(root + "/sys/module/apparmor/parameters/enabled", 16);
  return enabled && enabled->starts_with("Y");
}

std::vector<Check> check_apparmor_rules(const std::string& root) {
  std::vector<Check> out;
  const auto aa = (root == "/" ? std::string() : root) + "/etc/apparmor.d";
  const auto template_path = aa + "/libvirt/TEMPLATE.qemu";
  const auto abstraction_path = aa + "/abstractions/libvirt-qemu";
  auto tmpl = read_policy(template_path);
  auto abstraction = read_policy(abstraction_path);
  if (!tmpl.exists || !abstraction.exists) {
    out.push_back({Level::kFail,
                   "AppArmor: " + (tmpl.exists ? abstraction_path : template_path) +
                       " is missing, so libvirt cannot build the VMs' profiles",
                   "install libvirt's AppArmor files (Debian: libvirt-daemon-system)"});
    return out;
  }
  if (!includes(tmpl, "abstractions/libvirt-qemu"))
    out.push_back({Level::kFail,
                   "AppArmor: " + template_path +
                       " does not include <abstractions/libvirt-qemu>, so no VM's profile gets "
                       "sockhook's rules",
                   "restore the template from the libvirt package"});

  // Everything the abstraction pulls in, and the abstraction itself.
  std::vector<PolicyFile> files{abstraction};
  std::set<std::string> seen{abstraction_path};
  collect(aa, abstraction, 0, seen, files);

  check_daemon_rules(root, aa, out);
  std::vector<std::string> per_vm;
  for (const auto& f : files) {
    for (const auto& rule : f.rules) {
      if (is_per_vm_rule(rule) && std::find(per_vm.begin(), per_vm.end(), f.path) == per_vm.end())
        per_vm.push_back(f.path);
      if (is_shared_rule(rule))
        out.push_back({Level::kFail,
                       "AppArmor: " + f.path + " has '" + rule +
                           "', which lets every VM reach every other VM's lent sockets (all VMs "
                           "run as one user; only the profile tells them apart)",
                       "remove that rule; sockhook's rules give each VM its own directory"});
    }
  }
  if (!per_vm.empty()) {
    std::string where;
    for (const auto& p : per_vm) where += (where.empty() ? "" : ", ") + p;
    out.push_back({Level::kOk,
                   "AppArmor: every VM's profile includes sockhook's rules (" + where +
                       "): QEMU may use its own VM's /run/sockhook/libvirt-<uuid>/ only",
                   ""});
    return out;
  }
  // Not included: say where the rules are, if they are somewhere libvirt does not look.
  const auto dropin = aa + "/abstractions/libvirt-qemu.d/sockhook";
  if (read_policy(dropin).exists && !seen.contains(dropin)) {
    out.push_back({Level::kFail,
                   "AppArmor: sockhook's rules are in " + dropin + ", but " + abstraction_path +
                       " does not include that directory (libvirt older than 9.6), so every lend "
                       "is denied to QEMU",
                   installer_hint() + "; it puts them in local/abstractions/libvirt-qemu there"});
    return out;
  }
  out.push_back({Level::kFail,
                 "AppArmor: no VM's profile allows its lend directory, so every lend is denied "
                 "to QEMU",
                 installer_hint()});
  return out;
}

std::string vm_lend_separation_gap(const std::string& root) {
  if (!apparmor_enabled(root)) return "no AppArmor confines each VM's QEMU on this kernel";
  if (!libvirt_confines_with_apparmor(root))
    return "libvirt does not confine each VM's QEMU with an AppArmor profile of its own";
  if (!apparmor_mediates_unix_sockets(root))
    return "this kernel's AppArmor does not mediate connecting to sockets (no af_unix in its "
           "features)";
  return "";
}

std::vector<Check> check_confinement(const std::string& root) {
  std::vector<Check> out;
  const auto base = root == "/" ? std::string() : root;
  if (apparmor_enabled(root)) {
    out = check_apparmor_rules(root);
  } else {
    out.push_back({Level::kOk, "AppArmor is not enabled in this kernel", ""});
  }
  // S10: what keeps one VM from another's lends, for each method.
  if (auto gap = vm_lend_separation_gap(root); gap.empty())
    out.push_back({Level::kOk,
                   "VMs apart: each VM's AppArmor profile keeps its QEMU to its own lend "
                   "directory, and the proxy serves only its own VM's QEMU",
                   ""});
  else
    out.push_back({Level::kWarn,
                   "VMs apart: " + gap +
                       ", so a bind, acl or group lend reaches every VM's QEMU (they all run as "
                       "one user); a proxy lend serves only its own VM's QEMU, checked by "
                       "cgroup, and a context lend sits behind such a proxy",
                   "auto picks proxy here (or context behind it); name method bind, acl or "
                   "group only for a socket every VM may use"});
  auto enforce = try_read_file(base + "/sys/fs/selinux/enforce", 16);
  if (!enforce) {
    out.push_back({Level::kOk, "SELinux is not present", ""});
    return out;
  }
  const bool enforcing = enforce->starts_with("1");
  out.push_back({Level::kWarn,
                 std::string("SELinux is ") +
                     (enforcing ? "enforcing" : "permissive (denials are only logged)") +
                     ": QEMU runs as svirt_t, sockhook labels nothing, and sockhook has not been "
                     "tested under SELinux",
                 ""});
  out.push_back({enforcing ? Level::kWarn : Level::kOk,
                 "SELinux: bind, acl and group give QEMU the owner's own socket, which keeps its "
                 "label (user_tmp_t); the default policy does not let svirt_t connect to it",
                 "use method proxy: its socket is sockhook's own, in /run/sockhook"});
  out.push_back(
      {enforcing ? Level::kWarn : Level::kOk,
       "SELinux: proxy sockets and companion files take the label of /run/sockhook (var_run_t "
       "unless a file context says otherwise), which svirt_t may be denied too",
       "label the directory for VMs: semanage fcontext -a -t svirt_image_t "
       "'/run/sockhook(/.*)?' && restorecon -R /run/sockhook; or build a module from the "
       "denials (ausearch -m avc -ts recent | audit2allow -M sockhook_local). Either reaches "
       "every VM: only a VM's own MCS label on its lend directory would not, and sockhook does "
       "not set one"});
  return out;
}

}  // namespace sockhook
