#include "plan/choose_method.hpp"

#include "sys/acl.hpp"

namespace sockhook {
namespace {

/// Whether method context can be made here for `plugin` at `source`: a refusal, or nullopt
/// (and a warning when the compositor could not be asked).
std::optional<Problem> context_refusal(const PlanInputs& in, const Plugin& plugin,
                                       const SourceFacts& facts, const std::string& source,
                                       std::vector<Problem>& warnings) {
  if (plugin.context.empty())
    return Problem{"",
                   "method context needs a plugin whose server offers security contexts "
                   "(pipewire, jack, wayland); '" +
                       plugin.name + "' has none",
                   ""};
  if (auto why = plugin.context == "wayland" ? in.wayland_context_gap : context_unavailable())
    return Problem{"", *why, ""};
  if (plugin.context == "wayland" && facts.security_context == false)
    return Problem{"",
                   "method context: the compositor at " + source +
                       " offers no security context (wp_security_context_manager_v1; "
                       "weston and Mutter have none)",
                   "use method bind or proxy, which make the VM a full client of it"};
  if (plugin.context == "wayland" && !facts.security_context)
    warnings.push_back({"",
                        "could not ask the compositor at " + source +
                            " whether it offers a security context (" +
                            facts.security_context_note + "); the start fails if it offers none",
                        ""});
  return std::nullopt;
}

/// auto where no context is picked and an LSM keeps VMs apart: bind where the socket exists
/// and bind widens nothing, the proxy otherwise.
void choose_bind_or_proxy(MethodChoice& c, const PlanInputs& in, const SourceFacts& facts) {
  if (!facts.exists) {
    c.method = Method::kBind;
    c.note =
        "auto: bind if the socket exists at prepare, otherwise proxy "
        "(could not look now; planned as bind)";
  } else if (*facts.exists && facts.socket_gains && !facts.socket_gains->empty()) {
    // S4: bind would widen the socket's ACL mask for others too; the proxy widens nothing.
    c.method = Method::kProxy;
    c.note = "auto: the socket exists, but " +
             acl_gains_refusal(in.qemu.uid, 6, *facts.socket_gains) + "; so proxy";
  } else {
    c.method = *facts.exists ? Method::kBind : Method::kProxy;
    c.note = *facts.exists ? "auto: the socket exists, so bind"
                           : "auto: the socket does not exist yet, so proxy";
  }
}

}  // namespace

MethodChoice choose_method(const PlanInputs& in, const SocketRequest& req, const Plugin& plugin,
                           const SourceFacts& facts, const std::string& source) {
  MethodChoice c;
  c.method = req.method;
  const auto& gap = in.vm_separation_gap;
  // A compositor that said it offers a security context (asked at gather, as the owner).
  const bool compositor_offers =
      plugin.context == "wayland" && !in.wayland_context_gap && facts.security_context == true;
  if (req.method == Method::kContext) {
    if ((c.refusal = context_refusal(in, plugin, facts, source, c.warnings))) return c;
  } else if (req.capture) {
    c.warnings.push_back({"",
                          "capture='yes' has no effect with method " +
                              std::string(to_string(req.method)) +
                              ", which lends the whole server, capture included",
                          ""});
  }
  if (req.method == Method::kAuto && compositor_offers) {
    // S9: the compositor hides its privileged globals from the VM (and S10: behind the
    // proxy where no LSM keeps VMs apart, below).
    c.method = Method::kContext;
    c.note = "auto: context, since the compositor at " + source +
             " offers a security context (wp_security_context_v1)";
  } else if (req.method == Method::kAuto && !gap.empty()) {
    // S10: here only the proxy's cgroup check keeps other VMs from this VM's lend.
    c.method = Method::kProxy;
    c.note = "auto: proxy, which serves only this VM's QEMU: " + gap +
             ", so a bind lend would reach every VM's QEMU; " +
             (!facts.exists   ? "could not look at the socket now"
              : *facts.exists ? "the socket exists now"
                              : "the socket does not exist yet (the proxy connects when it does)");
  } else if (req.method == Method::kAuto) {
    choose_bind_or_proxy(c, in, facts);
  } else if (!traits(c.method).served && !gap.empty()) {
    c.warnings.push_back({"",
                          "every VM's QEMU can reach this lend, not only this VM's: " + gap +
                              " (method proxy serves only this VM)",
                          ""});
  }
  if (c.method != Method::kContext) return c;
  // The walls compose (S9 and S10): a context socket has no per-VM check. Where an LSM keeps
  // each VM to its own lend it can be the lend itself; where none does, it is the owner's,
  // 0600, and only the proxy in front of it reaches it, which serves only this VM's QEMU.
  c.behind_proxy = !gap.empty();
  auto why = c.note.empty() ? std::string() : c.note + "; ";
  c.note =
      why + (c.behind_proxy ? "context behind the proxy: " + gap +
                                  ", so the context socket is the owner's and only a proxy that "
                                  "serves only this VM's QEMU reaches it"
                            : std::string("context as the lend itself: an LSM keeps each VM to its "
                                          "own lend"));
  return c;
}

}  // namespace sockhook
