#pragma once

#include <string>
#include <string_view>

namespace sockhook {

/// /etc/sockhook/sockhook.conf: INI, read with CLI11's config parser.
///
///     # Log the plan and change nothing.
///     dry_run = false
struct Config {
  bool dry_run = false;

  /// Parses the file's text. Throws Error for unknown keys or bad values.
  static Config parse(std::string_view text);
};

/// Where the configuration lives.
std::string config_path();

/// Loads the configuration (missing file: defaults). It must be owned by root and not writable
/// by others (S3). SOCKHOOK_DRY_RUN=1 in the environment forces dry-run mode.
Config load_config(const std::string& path);

}  // namespace sockhook
