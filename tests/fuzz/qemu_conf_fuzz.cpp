// libFuzzer target: the two INI-style readers, parse_qemu_conf and Config::parse. Only
// sockhook::Error may come out of them.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.hpp"
#include "host/qemu_identity.hpp"
#include "model/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto conf = sockhook::parse_qemu_conf(text);
    if (conf.user && conf.user->find('\n') != std::string::npos) __builtin_trap();
  } catch (const sockhook::Error&) {
  }
  try {
    (void)sockhook::Config::parse(text);
  } catch (const sockhook::Error&) {
  }
  return 0;
}
