#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <CLI/ConfigFwd.hpp>

namespace sockhook {

/// Reads INI-style `key = value` text with CLI11's config parser, for sockhook.conf,
/// policy.conf and libvirt's qemu.conf. '#' comments after a value are dropped first (CLI11
/// only knows whole-line comments and would read `user = "x"  # note` as three values).
/// CLI11's "++"/"--" section markers are left out. Throws Error("cannot parse <what>: ...").
std::vector<CLI::ConfigItem> read_ini(std::string_view text, const std::string& what);

}  // namespace sockhook
