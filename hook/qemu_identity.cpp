#include "qemu_identity.hpp"

#include <cerrno>
#include <sstream>

#include <CLI/CLI.hpp>

#include "error.hpp"
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
  std::istringstream in{std::string(text)};
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigINI().from_config(in);
  } catch (const CLI::Error& e) {
    throw Error(std::string("cannot parse qemu.conf: ") + e.what());
  }
  QemuConf conf;
  for (const auto& item : items) {
    if (!item.parents.empty() || item.inputs.size() != 1) continue;
    if (item.name == "user") conf.user = item.inputs[0];
    if (item.name == "group") conf.group = item.inputs[0];
  }
  return conf;
}

QemuConf load_qemu_conf(const std::string& path) {
  try {
    return parse_qemu_conf(read_file(path, kMaxQemuConfBytes));
  } catch (const Error& e) {
    if (e.err() == ENOENT) return {};
    throw;
  }
}

QemuIdentity resolve_qemu_identity(const std::optional<DacLabel>& dac, const QemuConf& conf) {
  if (dac) {
    auto user = lookup_user(dac->user, true);
    auto gid = lookup_group(dac->group);
    if (!user || !gid)
      throw Error("cannot resolve the DAC label '" + dac->user + ":" + dac->group + "'");
    return make_identity(*user, gid, dac->group, dac->is_static ? "static seclabel" : "DAC label");
  }
  if (conf.user || conf.group) {
    std::string user_spec = conf.user.value_or("root");
    auto user = lookup_user(user_spec, true);
    if (!user) throw Error("cannot resolve user '" + user_spec + "' from qemu.conf");
    std::optional<gid_t> gid;
    if (conf.group) {
      gid = lookup_group(*conf.group);
      if (!gid) throw Error("cannot resolve group '" + *conf.group + "' from qemu.conf");
    }
    return make_identity(*user, gid, conf.group.value_or(""), "qemu.conf");
  }
  // The build defaults: Debian/Ubuntu libvirt-qemu, Fedora/RHEL/SUSE qemu.
  for (const char* name : {"libvirt-qemu", "qemu"}) {
    if (auto user = lookup_user(name)) {
      auto gid = lookup_group(name);
      return make_identity(*user, gid, gid ? name : "", "default");
    }
  }
  throw Error(
      "cannot find QEMU's user: no seclabel, no user in qemu.conf, and neither "
      "libvirt-qemu nor qemu exists");
}

}  // namespace sockhook
