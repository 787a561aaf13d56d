#pragma once

// `sockhook annotate`, the libvirt side: fetch the domain's definition (or read a file), edit
// it (commands/domain_edit.hpp), define it again, and record or revoke the policy allowance.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "commands/domain_edit.hpp"
#include "model/plugin.hpp"

namespace sockhook {

/// Parses "9.0.0", "9.0" or 9000000 into libvirt's version number; nullopt if malformed.
std::optional<unsigned long> parse_libvirt_version(std::string_view text);

/// Options of the `annotate` command.
struct AnnotateOptions {
  std::string domain;  ///< name or UUID (with --file: only used in messages)
  AnnotateRequest request;
  std::string file;             ///< offline: the input XML ("-" for stdin)
  std::string output;           ///< offline: where to write ("" for stdout)
  std::string connect;          ///< libvirt URI
  std::string libvirt_version;  ///< offline override, e.g. "9.0.0"
  std::string policy_file;      ///< where allowances go (root only)
  std::vector<PluginDir> plugin_dirs = default_plugin_dirs();
};

/// `sockhook annotate`: edits the persistent definition through libvirt (or a file), records
/// or revokes the policy allowance when root. Returns the exit code (0, 1, or 2 for usage).
int run_annotate(const AnnotateOptions& options);

}  // namespace sockhook
