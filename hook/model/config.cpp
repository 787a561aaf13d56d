#include "model/config.hpp"

#include <fcntl.h>

#include <cstdlib>

#include <CLI/CLI.hpp>

#include "base/error.hpp"
#include "model/ini.hpp"
#include "sys/file.hpp"
#include "sys/trust.hpp"

namespace sockhook {

Config Config::parse(std::string_view text) {
  Config config;
  for (const auto& item : read_ini(text, "configuration")) {
    auto key = item.fullname();
    auto value = item.inputs.size() == 1 ? item.inputs[0] : std::string();
    if (key == "dry_run") {
      if (value == "true" || value == "yes" || value == "1") {
        config.dry_run = true;
      } else if (value == "false" || value == "no" || value == "0") {
        config.dry_run = false;
      } else {
        throw Error("cannot parse configuration: dry_run = '" + value + "' is not true or false");
      }
    } else {
      throw Error("cannot parse configuration: unknown key '" + key + "'");
    }
  }
  return config;
}

std::string config_path() { return SOCKHOOK_SYSCONF_DIR "/sockhook.conf"; }

Config load_config(const std::string& path) {
  Config config;
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (fd) {
    auto st = fstat_or_throw(fd, path);
    require_trusted(st, "configuration " + path);
    config = in_context(path, [&] { return Config::parse(read_all(fd, 64 * 1024)); });
  } else if (errno != ENOENT) {
    throw_errno("cannot open configuration " + path);
  }
  if (const char* env = std::getenv("SOCKHOOK_DRY_RUN"); env && std::string_view(env) == "1")
    config.dry_run = true;
  return config;
}

}  // namespace sockhook
