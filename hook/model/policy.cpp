#include "model/policy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include <CLI/CLI.hpp>

#include "base/error.hpp"
#include "model/domain_xml.hpp"
#include "model/ini.hpp"
#include "sys/file.hpp"
#include "sys/resolve.hpp"
#include "sys/root_dir.hpp"
#include "sys/trust.hpp"

namespace sockhook {
namespace {

constexpr std::size_t kMaxPolicyBytes = 1024 * 1024;

/// A user or group as qemu.conf writes it: a name, a number, or "+N".
bool id_part_ok(std::string_view s) {
  if (s.starts_with('+')) {
    s.remove_prefix(1);
    return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
  }
  return is_valid_owner(s);
}

}  // namespace

bool is_valid_qemu_identity(std::string_view s) {
  auto colon = s.find(':');
  return colon != std::string_view::npos && id_part_ok(s.substr(0, colon)) &&
         id_part_ok(s.substr(colon + 1));
}

Policy Policy::parse(std::string_view text) {
  Policy policy;
  for (const auto& item : read_ini(text, "policy")) {
    if (item.parents.size() != 1)
      throw Error("cannot parse policy: '" + item.name +
                  "' must be inside a [domain-uuid] section");
    auto uuid = to_lower(item.parents[0]);
    if (!is_valid_uuid(uuid))
      throw Error("cannot parse policy: section [" + item.parents[0] + "] is not a domain UUID");
    if (item.name == kQemuKey) {
      for (const auto& identity : item.inputs) {
        if (identity.empty()) continue;
        if (!is_valid_qemu_identity(identity))
          throw Error("cannot parse policy: qemu identity '" + identity +
                      "' is not USER:GROUP (names or numbers)");
        policy.allow_qemu(uuid, identity);
      }
      continue;
    }
    if (item.inputs.empty())
      throw Error("cannot parse policy: '" + item.name + "' lists no plugin");
    // Through allow(): one rule per (domain, owner) even if the file names the pair twice,
    // so that format() followed by parse() gives the same rules back.
    if (!is_valid_owner(item.name))
      throw Error("cannot parse policy: '" + item.name + "' is not a user name or uid");
    for (const auto& plugin : item.inputs) {
      if (plugin.empty()) continue;
      if (plugin != "*" && !is_valid_plugin_name(plugin))
        throw Error("cannot parse policy: '" + plugin + "' is not a plugin name or '*'");
      policy.allow(uuid, item.name, plugin);
    }
  }
  return policy;
}

std::string Policy::format() const {
  std::ostringstream out;
  out << "# sockhook policy (SPEC S5): which owner may lend which plugins to which domain.\n"
         "# One [domain-uuid] section per domain; one 'owner = plugin ...' line per owner;\n"
         "# '*' allows every plugin. 'qemu = USER:GROUP ...' lets a DAC label in the domain's\n"
         "# XML name these identities (QEMU's configured one needs no line) to receive lends.\n"
         "# Managed by 'sockhook policy' and 'sockhook annotate'.\n";
  std::vector<std::string> uuids;
  auto add = [&](const std::string& uuid) {
    if (std::find(uuids.begin(), uuids.end(), uuid) == uuids.end()) uuids.push_back(uuid);
  };
  for (const auto& [uuid, identity] : qemu_) add(uuid);
  for (const auto& r : rules_) add(r.uuid);
  for (const auto& uuid : uuids) {
    out << "\n[" << uuid << "]\n";
    if (auto ids = qemu_identities(uuid); !ids.empty()) {
      out << kQemuKey << " =";
      for (const auto& id : ids) out << ' ' << id;
      out << '\n';
    }
    for (const auto& r : rules_) {
      if (r.uuid != uuid) continue;
      out << r.owner << " =";
      for (const auto& p : r.plugins) out << ' ' << p;
      out << '\n';
    }
  }
  return out.str();
}

bool Policy::allows(std::string_view uuid, std::string_view owner_name, unsigned owner_uid,
                    std::string_view plugin) const {
  auto uid = std::to_string(owner_uid);
  auto id = to_lower(std::string(uuid));
  return std::any_of(rules_.begin(), rules_.end(), [&](const PolicyRule& r) {
    if (r.uuid != id || (r.owner != owner_name && r.owner != uid)) return false;
    return std::any_of(r.plugins.begin(), r.plugins.end(),
                       [&](const std::string& p) { return p == "*" || p == plugin; });
  });
}

bool Policy::allows_any(std::string_view uuid) const {
  auto id = to_lower(std::string(uuid));
  return std::any_of(rules_.begin(), rules_.end(),
                     [&](const PolicyRule& r) { return r.uuid == id && !r.plugins.empty(); });
}

bool Policy::allow(const std::string& uuid, const std::string& owner, const std::string& plugin) {
  auto id = to_lower(uuid);
  for (auto& r : rules_) {
    if (r.uuid != id || r.owner != owner) continue;
    if (std::find(r.plugins.begin(), r.plugins.end(), plugin) != r.plugins.end()) return false;
    r.plugins.push_back(plugin);
    return true;
  }
  rules_.push_back({id, owner, {plugin}});
  return true;
}

bool Policy::revoke(const std::string& uuid, const std::string& owner, const std::string& plugin) {
  auto id = to_lower(uuid);
  bool changed = false;
  for (auto& r : rules_) {
    if (r.uuid != id || r.owner != owner) continue;
    auto before = r.plugins.size();
    if (plugin.empty()) {
      r.plugins.clear();
    } else {
      r.plugins.erase(std::remove(r.plugins.begin(), r.plugins.end(), plugin), r.plugins.end());
    }
    changed |= r.plugins.size() != before;
  }
  rules_.erase(std::remove_if(rules_.begin(), rules_.end(),
                              [](const PolicyRule& r) { return r.plugins.empty(); }),
               rules_.end());
  return changed;
}

std::vector<std::string> Policy::qemu_identities(std::string_view uuid) const {
  auto id = to_lower(std::string(uuid));
  std::vector<std::string> out;
  for (const auto& [u, identity] : qemu_)
    if (u == id) out.push_back(identity);
  return out;
}

bool Policy::allow_qemu(const std::string& uuid, const std::string& identity) {
  std::pair<std::string, std::string> rule{to_lower(uuid), identity};
  if (std::find(qemu_.begin(), qemu_.end(), rule) != qemu_.end()) return false;
  qemu_.push_back(std::move(rule));
  return true;
}

bool Policy::revoke_qemu(const std::string& uuid, const std::string& identity) {
  auto before = qemu_.size();
  std::pair<std::string, std::string> rule{to_lower(uuid), identity};
  qemu_.erase(std::remove(qemu_.begin(), qemu_.end(), rule), qemu_.end());
  return qemu_.size() != before;
}

std::string policy_path() { return SOCKHOOK_SYSCONF_DIR "/policy.conf"; }

Policy load_policy(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return {};
    throw_errno("cannot open policy " + path);
  }
  auto st = fstat_or_throw(fd, path);
  // S3: a policy that someone else could have written is no policy.
  if (!S_ISREG(st.st_mode)) throw Error("policy " + path + " is not a regular file");
  require_trusted(st, "policy " + path);
  return in_context(path, [&] { return Policy::parse(read_all(fd, kMaxPolicyBytes)); });
}

void save_policy(const Policy& policy, const std::string& path) {
  // The policy decides what the hook lends, and `policy allow` runs as root: its directory is
  // made like every root-owned directory (beneath an fd, no symlink followed) and written
  // into only if nobody else can write it (the same rule as loading).
  Fd dir = ensure_root_dir(dir_name(path), 0755, {0, ::geteuid()});
  // temp file + fsync + rename in the verified directory: readers see the old or the new file.
  write_file_atomic(dir, base_name(path), policy.format(), 0644);
}

}  // namespace sockhook
