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

std::optional<std::string> wayland_context_unavailable() {
  std::string missing = SOCKHOOK_WAYLAND_CONTEXT_MISSING;
  if (missing.empty()) return std::nullopt;
  return "method context needs a Wayland security context (wp_security_context_v1), and this "
         "sockhook was built without it (" +
         missing + "); use bind or proxy, which make the VM a full client of the compositor";
}

}  // namespace sockhook
