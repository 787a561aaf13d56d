#include "policy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include <CLI/CLI.hpp>

#include "domain_xml.hpp"
#include "error.hpp"
#include "ini.hpp"
#include "root_dir.hpp"
#include "sys/file.hpp"
#include "sys/resolve.hpp"
#include "sys/trust.hpp"

namespace sockhook {
namespace {

constexpr std::size_t kMaxPolicyBytes = 1024 * 1024;

/// Splits "dir/policy.conf" into the directory and the name.
}  // namespace

Policy Policy::parse(std::string_view text) {
  Policy policy;
  for (const auto& item : read_ini(text, "policy")) {
    if (item.parents.size() != 1)
      throw Error("cannot parse policy: '" + item.name +
                  "' must be inside a [domain-uuid] section");
    auto uuid = to_lower(item.parents[0]);
    if (!is_valid_uuid(uuid))
      throw Error("cannot parse policy: section [" + item.parents[0] + "] is not a domain UUID");
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
         "# '*' allows every plugin. Managed by 'sockhook policy' and 'sockhook annotate'.\n";
  std::vector<std::string> uuids;
  for (const auto& r : rules_)
    if (std::find(uuids.begin(), uuids.end(), r.uuid) == uuids.end()) uuids.push_back(r.uuid);
  for (const auto& uuid : uuids) {
    out << "\n[" << uuid << "]\n";
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
  try {
    return Policy::parse(read_all(fd, kMaxPolicyBytes));
  } catch (const Error& e) {
    throw e.with_context(path);
  }
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
