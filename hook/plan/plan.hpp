#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/build.hpp"
#include "base/paths.hpp"
#include "host/qemu_identity.hpp"
#include "model/domain_xml.hpp"
#include "model/plugin.hpp"
#include "model/policy.hpp"
#include "plan/step.hpp"
#include "sys/users.hpp"

namespace sockhook {

/// An environment variable QEMU needs, and whether the domain XML already provides it.
struct EnvNeed {
  std::string name;
  std::string value;
  bool provided = false;
  std::string provided_by;  ///< "qemu:env" or "<audio type='x' attr=...>"
  std::string conflict;     ///< if the domain sets it to another value: a line saying so
};

/// One thing wrong with a plan, or worth saying about it.
struct Problem {
  std::string socket;   ///< the socket it concerns; "" for the domain (or inside a SocketPlan)
  std::string message;  ///< what is wrong
  std::string hint;     ///< a command that may help, or ""

  /// "<socket>: <message> (hint: <hint>)", as the hook and `plan` print it.
  std::string text() const;
};

/// The text of each problem.
std::vector<std::string> texts(const std::vector<Problem>& problems);

/// Everything about lending one socket.
struct SocketPlan {
  SocketRequest request;
  std::string plugin_file;
  User owner;
  Method method = Method::kBind;  ///< resolved: never kAuto
  std::string method_note;        ///< why auto chose what it chose
  std::string source;             ///< the real socket's absolute path
  std::string target;             ///< the path QEMU uses ({target})
  std::vector<Step> steps;
  std::vector<EnvNeed> env;
  /// Which of the plugin's candidate paths `source` is, and why (choose_candidate); "" for a
  /// plugin with one path.
  std::string source_note;
  /// What the VM can reach through this lend that the server does not restrict (the plugin's
  /// <reach>); "" where the server restricts the VM's client.
  std::string reach;
  std::vector<std::string> exposes;  ///< other entries an acl/group grant makes reachable
  std::vector<Problem> warnings;
  /// Why the grant is not made yet (each with the command that grants it, in `hint`); a
  /// blocked socket is shown, never executed: it lives in Plan::blocked, not Plan::sockets.
  std::vector<Problem> blocked_by;
};

/// The whole plan for one domain and operation. Pure data.
struct Plan {
  std::string domain;
  std::string uuid;
  QemuIdentity qemu;
  IdentityDecision qemu_decision;  ///< whether `qemu` may receive the lends, and why
  std::string lend_dir;
  std::vector<Step> domain_steps;  ///< before any socket: the lend directory
  std::vector<SocketPlan> sockets;
  /// What a grant would bring: sockets the policy does not allow yet, and the domain steps
  /// only they need. For review (`plan`); the executor never sees them.
  std::vector<SocketPlan> blocked;
  std::vector<Step> blocked_domain_steps;
  std::vector<Problem> errors;    ///< what fails the start
  std::vector<Problem> warnings;  ///< everything else worth saying

  /// True if the start must fail.
  bool failed() const { return !errors.empty(); }
};

/// What gather saw at one of a plugin's candidate socket paths.
struct CandidateFacts {
  std::string path;               ///< as the plugin writes it
  bool owned_socket = false;      ///< a socket owned by the socket's owner
  std::optional<bool> listening;  ///< a server listens on it (/proc/net/unix); nullopt: unknown
  long long mtime_ns = 0;         ///< its mtime: when the server made it
};

/// Which candidate path a socket is lent from, and the one line that says why.
struct CandidateChoice {
  std::string path;
  std::string note;
};

/// Picks among `paths` (a plugin's candidates, in its order) with what gather saw of each
/// (`facts`, empty when nobody could look) for the owner `owner`: the owner's sockets, of
/// those the ones a server listens on (a socket nobody listens on is left over from a server
/// that exited), and of those the oldest, since a compositor started later is usually nested
/// in the session's own (on sway, a nested weston takes the wayland-0 that sway leaves free);
/// plugin order breaks ties. When none exists, the first path, as with a single path: bind
/// waits for it and the proxy connects to it later. Pure.
CandidateChoice choose_candidate(const std::vector<std::string>& paths,
                                 const std::vector<CandidateFacts>& facts,
                                 const std::string& owner);

/// What planning may know about the source socket; gathered before planning.
struct SourceFacts {
  std::optional<bool> exists;                      ///< nullopt: could not look
  std::optional<std::vector<std::string>> nearby;  ///< entries of each granted directory
  /// Whom else QEMU's u:rw on the socket would give rights to (acl_grant_gains), when QEMU
  /// lacks them now; empty: nobody (or no grant needed); nullopt: could not look.
  std::optional<std::vector<std::string>> socket_gains;
  /// The same for u:x on each directory of the way down: the directory, whom it would give x.
  std::vector<std::pair<std::string, std::vector<std::string>>> dir_gains;
  /// Granted directories with more entries than a probe lists: the rest are not named.
  std::vector<std::string> unlisted_dirs = {};  // = {}: older aggregate initializers stay whole
  /// For a plugin with several candidate paths: what was seen at each (choose_candidate);
  /// the facts above are of the chosen one.
  std::vector<CandidateFacts> candidates = {};
  /// For a plugin with context="wayland": whether the compositor at the chosen path offers
  /// wp_security_context_manager_v1 (asked as the owner, bounded; host/compositor.hpp);
  /// nullopt: not asked, or it could not be (`security_context_note` says why).
  std::optional<bool> security_context = std::nullopt;
  std::string security_context_note = {};
};

/// Everything planning needs, gathered beforehand, so that make_plan makes no system calls.
struct PlanInputs {
  const DomainInfo* domain = nullptr;
  const PluginSet* plugins = nullptr;
  const Policy* policy = nullptr;
  QemuIdentity qemu;                            ///< what QEMU runs as (label, else configured)
  std::optional<QemuIdentity> configured_qemu;  ///< qemu.conf or the default, if it resolves
  std::vector<AllowedIdentity> allowed_qemu;    ///< the policy's qemu = ... for this domain
  std::vector<std::string> identity_problems;   ///< policy identities that do not resolve
  std::map<std::string, std::optional<User>> owners;  ///< by owner as written
  UidRange uids;                                      ///< regular users (login.defs)
  std::map<std::string, SourceFacts> sources;         ///< by socket name
  Paths paths;
  /// libvirt confines each QEMU with an AppArmor profile of its own and the kernel mediates
  /// connecting to sockets by path: methods acl and group cannot work there.
  bool apparmor_refuses_original_path = false;
  /// Why every VM's QEMU could reach a socket in this VM's lend directory (e.g. "no AppArmor
  /// confines each VM's QEMU on this kernel"), or "" when an LSM keeps each VM to its own
  /// (vm_lend_separation_gap). Not "" unless gathered: then auto prefers the proxy, which
  /// serves only this VM's QEMU (S10).
  std::string vm_separation_gap = "not known whether an LSM keeps VMs apart here";
  /// Why this build cannot make a Wayland security context (wayland_context_unavailable),
  /// or nullopt; an input so that tests of the plan do not depend on the build's libraries.
  std::optional<std::string> wayland_context_gap = wayland_context_unavailable();
};

/// Turns the gathered inputs into a plan. Pure: no system calls, no I/O.
Plan make_plan(const PlanInputs& in);

/// Why `owner` (written as `written` in the XML) may not lend a socket, or nullopt: root and
/// system users (a uid outside `uids`, the login range: below it or above it, like nobody
/// or libvirt-qemu) are refused (S2).
std::optional<std::string> owner_refusal(const User& owner, const std::string& written,
                                         const UidRange& uids);

/// Where a socket is and where QEMU finds it.
struct SocketPlace {
  std::string source;  ///< the real socket's absolute path
  std::string target;  ///< in `lend_dir` for bind and proxy; the source itself for acl, group
};
/// The place of `plugin`'s socket of `owner`, lent with `method` (kAuto: not yet resolved),
/// from the candidate path `path` ("": the plugin's first).
SocketPlace socket_place(const Plugin& plugin, const User& owner, Method method, const Paths& paths,
                         const std::string& lend_dir, const std::string& path = "");

/// The variables a plugin's templates see for one socket of `owner` that QEMU finds at
/// `target`, with companion files in `lend_dir`.
Variables socket_variables(const Paths& paths, const User& owner, const std::string& target,
                           const std::string& lend_dir);

/// The environment QEMU needs for one socket: the plugin's variables expanded with `vars`, each
/// marked whether `domain` already provides it (or sets it to another value). Pure: annotate
/// writes exactly what the planner looks for.
std::vector<EnvNeed> socket_environment(const Plugin& plugin, const DomainInfo& domain,
                                        const Variables& vars);

/// The one line that says what the VM reaches through socket `socket` where the server does
/// not restrict it: "<socket>: unrestricted: <reach>".
std::string reach_line(const std::string& socket, const std::string& reach);

/// Whether release takes back what `method` gives. Only the proxy's lend ends with it: what
/// bind, acl and group give is the owner's socket inode itself, and a descriptor QEMU keeps of
/// it (even O_PATH, connected through /proc/self/fd/N) still connects after release.
bool revocable(Method method);

/// The default wait for a method that waits (SPEC §2).
inline constexpr int kDefaultWaitSeconds = 5;
/// The most a companion file may hold (S8). The PulseAudio cookie is 256 bytes.
inline constexpr std::size_t kMaxCompanionBytes = 64 * 1024;

}  // namespace sockhook
