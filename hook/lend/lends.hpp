#pragma once

// Every lend family: `run_step` for each step, `undo` for each effect and `check_health`
// where an effect has something to say in `sockhook status`. The executor and status reach
// them through std::visit over Step and Effect; a new family adds its header here.

#include "journal/transaction.hpp"
#include "lend/companion_file.hpp"
#include "lend/lend_acl.hpp"
#include "lend/lend_bind.hpp"
#include "lend/lend_context.hpp"
#include "lend/lend_dir.hpp"
#include "lend/lend_group.hpp"
#include "lend/lend_proxy.hpp"

namespace sockhook {

/// Runs one step of a socket's plan (lend/*.cpp).
inline void run_planned_step(SocketRun& run, const Step& step) {
  std::visit([&](const auto& s) { run_step(run, s); }, step);
}

/// Undoes one recorded effect (lend/*.cpp). Returns what it could not do, or nullopt.
inline UndoProblem undo_effect(const Effect& effect, const Undoing& u) {
  return std::visit([&](const auto& e) { return undo(e, u); }, effect);
}

/// The health of socket `s` of journal `j`, from each of its effects in turn.
inline LendHealth health_of(const Journal& j, const JournalSocket& s) {
  LendHealth h;
  for (const auto& effect : j.entries) {
    if (base_of(effect).socket != s.name) continue;
    std::visit(
        [&](const auto& e) {
          if constexpr (requires { check_health(e, j, s, h); }) check_health(e, j, s, h);
        },
        effect);
    if (h.final) return h;
  }
  if (!h.dead.empty()) {
    h.health = "broken";
    h.why.clear();
    for (const auto& d : h.dead) h.why += (h.why.empty() ? "" : "; ") + d;
    // Both are started again by refresh and by a libvirtd restart's reconnect.
    h.why += " (hint: sockhook refresh " + j.domain + "; a libvirtd restart's reconnect restarts " +
             (h.dead.size() > 1 ? "them" : "it") + " too)";
  }
  return h;
}

}  // namespace sockhook
