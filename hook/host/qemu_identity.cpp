#include "host/qemu_identity.hpp"

#include <unistd.h>

#include <cerrno>
#include <sstream>

#include <CLI/CLI.hpp>

#include "base/error.hpp"
#include "model/ini.hpp"
#include "sys/file.hpp"
#include "sys/users.hpp"

namespace sockhook {
namespace {

constexpr std::size_t kMaxQemuConfBytes = 1024 * 1024;

QemuIdentity make_identity(const User& user, std::optional<gid_t> gid, std::string group_spec,
                           std::string source) {
  QemuIdentity id;
  id.uid = user.uid;
  id.user = user.name.empty() ? "+" + std::to_string(user.uid) : user.name;
  id.gid = gid.value_or(user.gid);
  id.group = group_spec.empty() || group_spec.starts_with('+') ? group_name(id.gid) : group_spec;
  id.source = std::move(source);
  return id;
}

}  // namespace

QemuConf parse_qemu_conf(std::string_view text) {
  // libvirt's conf syntax is `key = value` with '#' comments and quoted strings; CLI11's INI
  // reader handles that. Multi-line lists (cgroup_device_acl) come out as junk items that we
  // ignore, since only top-level user/group matter.
  QemuConf conf;
  for (const auto& item : read_ini(text, "qemu.conf")) {
    // CLI11 merges a repeated key into one list; libvirt reads the first occurrence.
    if (!item.parents.empty() || item.inputs.empty()) continue;
    if (item.name == "user") conf.user = item.inputs[0];
    if (item.name == "group") conf.group = item.inputs[0];
  }
  return conf;
}

QemuConf load_qemu_conf(const std::string& path) {
  auto read = attempt([&] { return read_file(path, kMaxQemuConfBytes); });
  if (read) return parse_qemu_conf(*read.value);
  if (read.error->err() == ENOENT) return {};
  // qemu.conf is root-only (0600) on Debian; `sockhook plan` runs without root (SPEC §6) and
  // then plans with the defaults. Root never gets EACCES here, so the hook is not affected.
  if (read.error->err() == EACCES && ::geteuid() != 0) return {};
  throw *read.error;
}

QemuIdentity resolve_qemu_identity(const std::optional<DacLabel>& dac, const QemuConf& conf) {
  if (dac) {
    auto user = lookup_user(dac->user, true);
    auto gid = lookup_group(dac->group);
    if (!user || !gid)
      throw Error("cannot resolve the DAC label '" + dac->user + ":" + dac->group + "'");
    return make_identity(*user, gid, dac->group, dac->is_static ? "static seclabel" : "DAC label");
  }
  // The build defaults: Debian/Ubuntu libvirt-qemu, Fedora/RHEL/SUSE qemu. libvirt applies
  // them to user and group separately, so a qemu.conf that sets one keeps the other's default.
  std::optional<User> default_user;
  std::optional<gid_t> default_gid;
  std::string default_group;
  for (const char* name : {"libvirt-qemu", "qemu"}) {
    if ((default_user = lookup_user(name))) {
      if ((default_gid = lookup_group(name))) default_group = name;
      break;
    }
  }
  std::optional<User> user = default_user;
  std::optional<gid_t> gid = default_gid;
  std::string group_spec = default_group;
  if (conf.user) {
    user = lookup_user(*conf.user, true);
    if (!user) throw Error("cannot resolve user '" + *conf.user + "' from qemu.conf");
  }
  if (conf.group) {
    gid = lookup_group(*conf.group);
    if (!gid) throw Error("cannot resolve group '" + *conf.group + "' from qemu.conf");
    group_spec = *conf.group;
  }
  if (!user)
    throw Error(
        "cannot find QEMU's user: no seclabel, no user in qemu.conf, and neither "
        "libvirt-qemu nor qemu exists");
  return make_identity(*user, gid, group_spec, conf.user || conf.group ? "qemu.conf" : "default");
}

std::string QemuIdentity::text() const {
  return user + ":" + group + " (uid " + std::to_string(uid) + ", gid " + std::to_string(gid) +
         ", from " + source + ")";
}

IdentityDecision decide_qemu_identity(const QemuIdentity& qemu,
                                      const std::optional<QemuIdentity>& configured,
                                      const std::vector<AllowedIdentity>& allowed) {
  // What root configured for libvirt is what every domain's QEMU runs as by default.
  if (!qemu.from_label()) return {IdentityVerdict::kConfigured, "QEMU's configured identity"};
  if (configured && configured->uid == qemu.uid && configured->gid == qemu.gid)
    return {
        IdentityVerdict::kConfigured,
        "the " + qemu.source + " names QEMU's configured identity (" + configured->source + ")"};
  for (const auto& a : allowed)
    if (a.uid == qemu.uid && a.gid == qemu.gid)
      return {IdentityVerdict::kAllowedByPolicy,
              "qemu = " + a.written + " in the domain's policy section"};
  std::string conf = configured ? configured->user + ":" + configured->group : "none resolves";
  return {IdentityVerdict::kRefused, "the " + qemu.source +
                                         " names neither QEMU's configured identity (" + conf +
                                         ") nor one the policy allows for this domain"};
}

std::string IdentityDecision::text() const {
  switch (verdict) {
    case IdentityVerdict::kConfigured:
      return "identity configured: " + why;
    case IdentityVerdict::kAllowedByPolicy:
      return "identity allowed by the policy: " + why;
    case IdentityVerdict::kRefused:
      break;
  }
  return "identity refused: " + why;
}

std::string_view to_string(IdentityVerdict v) {
  switch (v) {
    case IdentityVerdict::kConfigured:
      return "configured";
    case IdentityVerdict::kAllowedByPolicy:
      return "allowed_by_policy";
    case IdentityVerdict::kRefused:
      break;
  }
  return "refused";
}

std::vector<AllowedIdentity> resolve_allowed_identities(const std::vector<std::string>& written,
                                                        std::vector<std::string>& problems) {
  std::vector<AllowedIdentity> out;
  for (const auto& w : written) {
    auto colon = w.find(':');
    auto user = colon == std::string::npos ? std::nullopt : lookup_user(w.substr(0, colon), true);
    auto gid = colon == std::string::npos ? std::nullopt : lookup_group(w.substr(colon + 1));
    if (!user || !gid) {
      problems.push_back("the policy allows QEMU identity '" + w +
                         "', which does not resolve on this host; ignored");
      continue;
    }
    out.push_back({w, user->uid, *gid});
  }
  return out;
}

}  // namespace sockhook
