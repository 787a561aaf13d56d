#pragma once

#include <optional>
#include <string>

namespace sockhook {

// What this build of sockhook can do: facts fixed when it was compiled, so the planner may ask
// them and stay pure.

/// Why method context cannot work with this build, in one line (built without libpipewire
/// 1.2 or newer, which has no security context: Debian 12 has 0.3.65), or nullopt if it can.
/// The planner refuses the method with this line; `auto` must ask it before it picks context.
std::optional<std::string> context_unavailable();

/// The same for a Wayland compositor: why this build has no sockhook-wayland-holder (built
/// without libwayland-client, wayland-scanner or wayland-protocols 1.32's
/// security-context-v1.xml: Debian 12 has 1.31), or nullopt if it has one.
std::optional<std::string> wayland_context_unavailable();

}  // namespace sockhook
