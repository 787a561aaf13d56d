#pragma once

// The owner's way to root (SPEC §16): an unprivileged command runs this same program's internal
// subcommand through pkexec, and polkit decides by the action the subcommand names
// (dist/polkit/org.sockhook.policy.in). grant, revoke and an owner's status share it.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sys/users.hpp"

namespace sockhook {

/// pkexec by its full path: the owner's PATH chooses nothing here.
inline constexpr const char* kPkexec = "/usr/bin/pkexec";

/// What one run through pkexec is about, for its one line when polkit says no.
struct PkexecAsk {
  std::string who;     ///< "DOMAIN", "DOMAIN: PLUGIN" or "status": the line's first fields
  std::string action;  ///< the polkit action the internal subcommand maps to
  std::string undone;  ///< what the refusal leaves as it was: "nothing changed", ...
};

/// The one line (after "sockhook: error: ") that replaces pkexec's own text when `code` and
/// `pkexec_stderr` are one of its known refusals: polkit said no (127, "Not authorized"), the
/// owner dismissed the dialog (126), or polkit wanted a password and nothing could ask it (127,
/// no terminal and no authentication agent). nullopt for anything else: a failure of pkexec's
/// own (polkitd not running, say) or the exit code of the program it ran.
std::optional<std::string> pkexec_refusal(const PkexecAsk& ask, uid_t uid, int code,
                                          std::string_view pkexec_stderr);

/// Runs `pkexec <this program> <args...>` as a child and waits for it: the wait is the owner's,
/// since polkit may be asking them for a password. stdin and stdout are the caller's; stderr
/// goes through a pipe, so that a known refusal (pkexec_refusal) is printed as sockhook's one
/// line instead of pkexec's text, and any other text is passed on unchanged. Returns the exit
/// code: the internal subcommand's, or 1 (after its one line) when polkit refused or pkexec
/// could not run.
int run_through_pkexec(const PkexecAsk& ask, const std::vector<std::string>& args);

/// The caller of an internal subcommand (`command`), from what pkexec alone sets: PKEXEC_UID,
/// the real uid of the process that ran pkexec (pkexec clears the rest of the environment).
/// Never from an argument. Throws Error when not run by pkexec as root, or when the caller is
/// not a regular user (root and system users lend nothing of their own).
User caller_from_pkexec(std::string_view command);

}  // namespace sockhook
