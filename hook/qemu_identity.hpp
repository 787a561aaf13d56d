#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "domain_xml.hpp"

namespace sockhook {

/// `user` and `group` as written in /etc/libvirt/qemu.conf.
struct QemuConf {
  std::optional<std::string> user;
  std::optional<std::string> group;
};

/// Parses libvirt's qemu.conf text (comments, quotes, "+N"). Keys other than user and group
/// are ignored. Throws Error only on text CLI11 cannot read at all.
QemuConf parse_qemu_conf(std::string_view text);

/// The uid and gid QEMU runs as, and where that answer came from.
struct QemuIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user;    ///< name (or "+N" if it has none)
  std::string group;   ///< name (or "+N")
  std::string source;  ///< "static seclabel", "DAC label", "qemu.conf", "default"
};

/// Resolves QEMU's identity (SPEC §5): a DAC label in the XML, then qemu.conf, then the
/// distribution defaults (libvirt-qemu, then qemu). Looks users up; throws Error when none
/// resolves.
QemuIdentity resolve_qemu_identity(const std::optional<DacLabel>& dac, const QemuConf& conf);

/// Reads /etc/libvirt/qemu.conf (or `path`); missing means empty.
QemuConf load_qemu_conf(const std::string& path = "/etc/libvirt/qemu.conf");

}  // namespace sockhook
