#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sockhook {

/// One allowance: this owner may lend these plugins ("*" for all) to this domain.
struct PolicyRule {
  std::string uuid;   ///< lower-case domain UUID
  std::string owner;  ///< user name or numeric uid, as recorded
  std::vector<std::string> plugins;
};

/// /etc/sockhook/policy.conf (S5). Default deny: no rule, no lend.
///
/// The file is INI, read with CLI11's config parser: one section per domain UUID, one key per
/// owner, the value a space-separated list of plugins.
///
///     [6f0e2c1a-5b1d-4d8e-9f43-0c1d2e3f4a5b]
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

  /// Adds an allowance; returns false if it was already there.
  bool allow(const std::string& uuid, const std::string& owner, const std::string& plugin);
  /// Removes an allowance (all plugins when `plugin` is empty); returns false if absent.
  bool revoke(const std::string& uuid, const std::string& owner, const std::string& plugin);

  const std::vector<PolicyRule>& rules() const { return rules_; }

 private:
  std::vector<PolicyRule> rules_;
};

/// Where the policy lives.
std::string policy_path();

/// Loads the policy from `path`; a missing file is an empty policy. The file must be owned
/// by root and not writable by others (S3), else Error.
Policy load_policy(const std::string& path);

/// Writes the policy atomically (root-only, mode 0644).
void save_policy(const Policy& policy, const std::string& path);

}  // namespace sockhook
