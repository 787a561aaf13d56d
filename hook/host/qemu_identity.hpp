#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/domain_xml.hpp"

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

  /// True if the domain XML named this identity (a DAC <seclabel>), not the configuration.
  bool from_label() const { return source == "static seclabel" || source == "DAC label"; }
  /// "user:group (uid U, gid G, from SOURCE)".
  std::string text() const;
};

/// An identity the policy allows besides the configured one, as written and as resolved.
struct AllowedIdentity {
  std::string written;  ///< "USER:GROUP" as in the policy
  uid_t uid = 0;
  gid_t gid = 0;
};

/// Whether QEMU's identity may receive a domain's lends (issue 9: root decides who receives a
/// lend, not whoever writes the XML).
enum class IdentityVerdict { kConfigured, kAllowedByPolicy, kRefused };

struct IdentityDecision {
  IdentityVerdict verdict = IdentityVerdict::kConfigured;
  std::string why;  ///< one phrase saying which rule applied

  /// "identity configured: ...", "identity allowed by the policy: ...", "identity refused: ...".
  std::string text() const;
};

/// "configured", "allowed_by_policy", "refused" (plan --json).
std::string_view to_string(IdentityVerdict v);

/// The decision for `qemu` (what the XML or the configuration says QEMU runs as): the
/// configured identity (`configured`: qemu.conf or the distribution default; nullopt when
/// none resolves) is allowed, and so is one of `allowed` with the same uid and gid; any other
/// identity is refused. Pure.
IdentityDecision decide_qemu_identity(const QemuIdentity& qemu,
                                      const std::optional<QemuIdentity>& configured,
                                      const std::vector<AllowedIdentity>& allowed);

/// Looks up the policy's "USER:GROUP" identities; those that do not resolve are left out and
/// named in `problems`.
std::vector<AllowedIdentity> resolve_allowed_identities(const std::vector<std::string>& written,
                                                        std::vector<std::string>& problems);

/// Resolves QEMU's identity (SPEC §5): a DAC label in the XML, then qemu.conf, then the
/// distribution defaults (libvirt-qemu, then qemu). Looks users up; throws Error when none
/// resolves.
QemuIdentity resolve_qemu_identity(const std::optional<DacLabel>& dac, const QemuConf& conf);

/// Reads /etc/libvirt/qemu.conf (or `path`); missing means empty.
QemuConf load_qemu_conf(const std::string& path = "/etc/libvirt/qemu.conf");

}  // namespace sockhook
