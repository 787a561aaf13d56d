#pragma once

// `sockhook grant` and `sockhook revoke`: the owner lends their own sockets to a domain, or
// takes them back, as themselves (SPEC §16, issue 21). The unprivileged half runs this same
// program through pkexec; polkit decides (action org.sockhook.grant, dist/polkit/). The
// privileged half takes the caller from pkexec alone and does what a root `sockhook annotate
// DOMAIN --plugin P --owner CALLER` (or `--remove`) does, nothing more.

#include <string>

namespace sockhook {

/// The polkit action of grant and revoke, as dist/polkit/org.sockhook.policy.in declares it.
inline constexpr const char* kGrantAction = "org.sockhook.grant";
/// The internal subcommand pkexec runs; the action matches it (exec.argv1), and only it.
inline constexpr const char* kConsentCommand = "polkit-consent";

/// What the owner asks.
struct ConsentRequest {
  bool revoke = false;
  std::string domain;  ///< name or UUID
  std::string plugin;  ///< grant: required; revoke: empty for every socket of the caller's
  bool capture = false;
  std::string method;  ///< empty: the plugin's default
};

/// `sockhook grant|revoke` as the owner: checks the arguments, then runs this program's
/// `polkit-consent` through pkexec and waits for it. Returns the exit code.
int ask_consent(const ConsentRequest& request);

/// `sockhook polkit-consent`, run by pkexec as root: the caller is PKEXEC_UID, never an
/// argument; the domain must be defined, the plugin installed, a socket of the same name
/// the caller's own. Returns the exit code.
int run_consent(const ConsentRequest& request);

}  // namespace sockhook
