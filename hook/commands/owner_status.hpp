#pragma once

// `sockhook status` run by an owner (SPEC §16): the journals are root's (0700), so the owner's
// status runs this program's internal `polkit-status` through pkexec, as grant does (action
// org.sockhook.status, dist/polkit/), and it shows the caller's own lends and nothing else.
// Root's status reads the journals itself, as before.

#include <string>
#include <vector>

#include "base/paths.hpp"
#include "commands/recorded_lends.hpp"
#include "sys/users.hpp"

namespace sockhook {

/// The polkit action of an owner's status, as dist/polkit/org.sockhook.policy.in declares it.
inline constexpr const char* kStatusAction = "org.sockhook.status";
/// The internal subcommand pkexec runs for it; the action matches it (exec.argv1), and only it.
inline constexpr const char* kStatusCommand = "polkit-status";

/// `sockhook status [--json]` as an owner: runs this program's `polkit-status` through pkexec
/// and waits for it. It takes no argument but `--json`: whose lends is pkexec's to say.
/// Returns the exit code.
int ask_owner_status(bool json);

/// An owner's lends, for `polkit-status`.
struct OwnerLends {
  User caller;
  std::vector<LendStatus> lends;
};

/// `sockhook polkit-status`, run by pkexec as root: the caller is PKEXEC_UID, never an
/// argument, and the lends are those the journals record with the caller's uid as their
/// owner-uid. It only reads. Throws Error when not run by pkexec, or for a caller who is not a
/// regular user.
OwnerLends owner_lends(const Paths& paths);

}  // namespace sockhook
