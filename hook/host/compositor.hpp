#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace sockhook {

// Whether the owner's Wayland compositor offers a security context (wp_security_context_v1),
// for the planner: method context is refused at plan time where it offers none, and `auto`
// picks context where it does. Changes nothing on the host: one short connection as the owner.

/// What the compositor answered.
struct SecurityContextAnswer {
  std::optional<bool> offered;  ///< nullopt: could not ask (`note` says why)
  std::string note;
};

/// sockhook-wayland-holder: beside the running sockhook binary when it is there (a build
/// tree, the package's /usr/bin), else in the bindir sockhook was built for (install.sh's
/// hook is a copy in /etc/libvirt/hooks/qemu.d).
std::string wayland_holder_path(const std::string& self_exe = "/proc/self/exe");

/// Longest the planner waits for the compositor's answer (the holder's probe, killed then).
inline constexpr int kCompositorProbeMs = 2000;

/// Asks the compositor listening at `socket` (an absolute path) whether it offers
/// wp_security_context_manager_v1, by running `holder` --probe as `owner` (run_as_user: no
/// capability, nothing of the caller's but a pipe), bounded by kCompositorProbeMs. The
/// compositor's bytes are parsed only in that process, by libwayland; the caller reads one
/// word. Only root asks (the owner's socket is the owner's to connect to).
SecurityContextAnswer ask_security_context(const std::string& holder, const std::string& socket,
                                           uid_t owner, gid_t owner_gid);

}  // namespace sockhook
