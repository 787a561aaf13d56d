#pragma once

#include "journal/transaction.hpp"
#include "plan/step.hpp"

namespace sockhook {

// Method context on a Wayland compositor (issue 19): the same lend as PipeWire's context
// (lend_context.hpp: a socket the hook binds for QEMU's user, a holder of the owner's that the
// journal names as a kProxy entry), with sockhook-wayland-holder (hook/holder/
// wayland_holder.cpp), which hands the socket to the compositor through
// wp_security_context_v1 (engine org.sockhook, app id the domain's name, instance id its
// UUID) and holds close_fd until release. The compositor hides its privileged globals from
// every client of it.

/// StartContext with step.wayland(), which start_context hands over to.
void start_wayland_context(SocketRun& run, const StartContext& step);

}  // namespace sockhook
