#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/build.hpp"
#include "journal/transaction.hpp"

namespace sockhook {

// Method context (issue 19): the VM reaches the owner's server only through a security
// context that sockhook creates for it. The hook binds the lend socket itself (in the lend
// directory, for QEMU's user, as the proxy does); a holder process running as the owner,
// started like the proxy, hands it to the server and holds close_fd until release:
// - PipeWire (pipewire, jack): hook/holder/context_holder.cpp, pw_security_context_create.
//   PipeWire labels every client of that socket; WirePlumber's rules from dist/wireplumber
//   restrict them to playback.
// - Wayland: hook/holder/wayland_holder.cpp, wp_security_context_v1 (engine org.sockhook,
//   app id the domain's name, instance id its UUID). The compositor hides its privileged
//   globals from every client of it.

/// The engine name a context lend gives its clients (pipewire.sec.engine); the WirePlumber
/// rules in dist/wireplumber match it.
inline constexpr const char* kContextEngine = "org.sockhook";

/// StartContext: creates the listening socket in the lend directory as root (never more open
/// than 0600, then owned by QEMU's user) and starts the holder as the owner. The journal
/// entry is a ProxyStarted (a process of the owner listening on the lend's path: it is stopped,
/// checked and shown exactly as a proxy is); its pid and start time are recorded before the
/// holder runs as the owner.
void run_step(SocketRun& run, const StartContext& step);

/// reconnect and refresh: a dead holder of entry `index` is started again, as the proxy is
/// (restart_proxy): its socket is bound anew at the same path for QEMU's user and a new
/// context created on the owner's server; the new pid is recorded. The VM's old clients are
/// gone with the old holder; QEMU's new connections get through. Returns what it could not do,
/// or nullopt.
UndoProblem restart_context(Transaction& tx, std::size_t index, const StartContext& step,
                            const ExecContext& ctx, const std::string& label, gid_t qemu_gid);

/// reconnect: the dead process of kProxy entry `index` (a proxy, or a context's holder) of the
/// socket whose steps are `steps`, started again (restart_proxy, restart_context). A holder
/// behind a proxy (S10) takes the proxy with it: the proxy's descriptor named the old socket.
/// Returns what it could not do, or nullopt.
UndoProblem restart_served(Transaction& tx, std::size_t index, const std::vector<Step>& steps,
                           const ExecContext& ctx, const std::string& label, gid_t qemu_gid);

}  // namespace sockhook
