#include "base/build.hpp"

namespace sockhook {

std::optional<std::string> context_unavailable() {
#ifdef SOCKHOOK_CONTEXT_HOLDER
  return std::nullopt;
#else
  return "method context needs a PipeWire security context, and this sockhook was built "
         "without libpipewire 1.2 or newer (" SOCKHOOK_LIBPIPEWIRE_FOUND
         "); use bind or proxy, which lend the owner's whole PipeWire";
#endif
}

}  // namespace sockhook
