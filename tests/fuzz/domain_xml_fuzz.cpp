// libFuzzer target: parse_domain_xml must never crash, hang or leak on any input. The only
// exception it may throw is sockhook::Error (not XML, or no <domain> root).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.hpp"
#include "model/domain_xml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view xml(reinterpret_cast<const char*>(data), size);
  (void)sockhook::may_have_metadata(xml);
  try {
    auto info = sockhook::parse_domain_xml(xml);
    // Invariants the hook relies on.
    if (info.has_metadata && !info.has_fatal_error() && !sockhook::is_valid_uuid(info.uuid))
      __builtin_trap();
    for (const auto& s : info.sockets)
      if (s.plugin.empty() || s.plugin.find('/') != std::string::npos || s.owner.empty())
        __builtin_trap();
  } catch (const sockhook::Error&) {
  }
  return 0;
}
