#pragma once

#include <filesystem>

#include "model/plugin.hpp"
#include "test_files.hpp"

namespace sockhook {

/// The repository's plugins, parsed directly (no ownership checks: planning is pure).
inline PluginSet repo_plugin_set() {
  PluginSet set;
  for (const auto& e : std::filesystem::directory_iterator(
           std::filesystem::path(SOCKHOOK_SOURCE_DIR) / "plugins")) {
    auto p = parse_plugin(read_text(e.path()), false, e.path().string());
    set.plugins.emplace(p.name, std::move(p));
  }
  return set;
}

}  // namespace sockhook
