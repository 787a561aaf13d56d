#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sockhook {

/// One allowance: this owner may lend these plugins ("*" for all) to this domain.
struct PolicyRule {
  std::string uuid;   ///< lower-case domain UUID
  std::string owner;  ///< user name or numeric uid, as recorded
  std::vector<std::string> plugins;
};

/// The key of a section's line that names the QEMU identities, other than QEMU's configured
/// one, that may receive this domain's lends. An owner named like this is written by uid.
inline constexpr std::string_view kQemuKey = "qemu";

/// How the policy file names an owner: the user name, or the uid for a user named like the
/// `qemu` key (which lists QEMU identities, not plugins).
inline std::string policy_owner_key(const std::string& name, unsigned uid) {
  return name == kQemuKey ? std::to_string(uid) : name;
}

/// Whether `s` is "USER:GROUP", each a name or a number (with or without a leading '+').
bool is_valid_qemu_identity(std::string_view s);

/// /etc/sockhook/policy.conf (S5). Default deny: no rule, no lend.
///
/// The file is INI, read with CLI11's config parser: one section per domain UUID, one key per
/// owner, the value a space-separated list of plugins. The key `qemu` lists the identities,
/// besides QEMU's configured one (qemu.conf or the distribution default), that a DAC label in
/// the domain's XML may name and that then receive the lends.
///
///     [6f0e2c1a-5b1d-4d8e-9f43-0c1d2e3f4a5b]
///     qemu = vmuser:vmuser
///     alice = pipewire pulseaudio
class Policy {
 public:
  /// Parses the file's text. Throws Error on malformed content.
  static Policy parse(std::string_view text);
  /// The text of the file, with a header comment.
  std::string format() const;

  /// Whether `owner` (matched by name or by numeric uid) may lend `plugin` to `uuid`.
  bool allows(std::string_view uuid, std::string_view owner_name, unsigned owner_uid,
              std::string_view plugin) const;

  /// Whether any owner may lend any plugin to `uuid`: the policy gate (issue 22).
  bool allows_any(std::string_view uuid) const;

  /// Adds an allowance; returns false if it was already there.
  bool allow(const std::string& uuid, const std::string& owner, const std::string& plugin);
  /// Removes an allowance (all plugins when `plugin` is empty); returns false if absent.
  bool revoke(const std::string& uuid, const std::string& owner, const std::string& plugin);

  /// The extra QEMU identities ("USER:GROUP", as written) allowed for `uuid`.
  std::vector<std::string> qemu_identities(std::string_view uuid) const;
  /// Allows QEMU to run as `identity` for `uuid`; returns false if it already was.
  bool allow_qemu(const std::string& uuid, const std::string& identity);
  /// Takes that back; returns false if it was not allowed.
  bool revoke_qemu(const std::string& uuid, const std::string& identity);

  const std::vector<PolicyRule>& rules() const { return rules_; }
  /// (uuid, identity) pairs, in file order.
  const std::vector<std::pair<std::string, std::string>>& qemu_rules() const { return qemu_; }

 private:
  std::vector<PolicyRule> rules_;
  std::vector<std::pair<std::string, std::string>> qemu_;
};

/// Where the policy lives.
std::string policy_path();

/// Loads the policy from `path`; a missing file is an empty policy. The file must be owned
/// by root and not writable by others (S3), else Error.
Policy load_policy(const std::string& path);

/// Writes the policy atomically (root-only, mode 0644).
void save_policy(const Policy& policy, const std::string& path);

}  // namespace sockhook
