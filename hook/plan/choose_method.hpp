#pragma once

#include <optional>
#include <string>
#include <vector>

#include "plan/plan.hpp"

namespace sockhook {

/// What a socket is lent with, and why: the method the metadata asks for, or what `auto`
/// picks from the gathered facts.
struct MethodChoice {
  Method method = Method::kBind;  ///< resolved: never kAuto
  std::string note;               ///< why, for `plan` (SocketPlan::method_note)
  std::vector<Problem> warnings;  ///< for the socket (Problem::socket "")
  /// Method context where no LSM keeps VMs apart (S10): the context socket is the owner's
  /// and private, and a peer-checking proxy in front of it is the lend ("the walls compose").
  bool behind_proxy = false;
  /// Why the socket cannot be lent as asked (message and hint), or nullopt.
  std::optional<Problem> refusal;
};

/// The method for `req` of `plugin`, whose server is at `source` (facts: `facts`). Pure.
/// - S9: a context lend is restricted inside the server; `auto` picks it only for a
///   compositor that said it offers a security context.
/// - S10: where an LSM keeps each VM to its own lend (`in.vm_separation_gap` empty) the
///   context socket is the lend itself; where none does, it sits behind the proxy, which
///   serves only this VM's QEMU, and `auto` picks the proxy for everything else.
MethodChoice choose_method(const PlanInputs& in, const SocketRequest& req, const Plugin& plugin,
                           const SourceFacts& facts, const std::string& source);

}  // namespace sockhook
