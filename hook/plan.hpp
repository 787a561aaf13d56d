#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "domain_xml.hpp"
#include "plugin.hpp"
#include "policy.hpp"
#include "qemu_identity.hpp"
#include "sys/users.hpp"

namespace sockhook {

/// Where sockhook keeps lend directories and its journal.
struct Paths {
  std::string lend_root = "/run/sockhook";        ///< /run/sockhook/libvirt-<uuid>/ per domain
  std::string state_dir = "/run/sockhook/state";  ///< journals and locks, root 0700
  std::string user_runtime_root = "/run/user";    ///< /run/user/<uid>

  /// A domain's lend directory carries the name of the domain's AppArmor profile
  /// (libvirt-<uuid>), so that one rule, /run/sockhook/@{profile_name}/, gives each VM its own
  /// directory and no other's (dist/apparmor/sockhook).
  std::string lend_dir(const std::string& uuid) const { return lend_root + "/libvirt-" + uuid; }
  std::string runtime_dir(uid_t uid) const { return user_runtime_root + "/" + std::to_string(uid); }
};

// ---- The steps of a prepare. Each is plain data; executors carry them out. ----

/// Create the domain's lend directory: root-owned 0700, plus one ACL entry u:QEMU:--x, so
/// that only QEMU's user can traverse it and nobody but root can write it (S4).
struct MakeLendDir {
  std::string path;
  uid_t qemu_uid;
};

/// Resolve the source socket beneath the owner's runtime directory with openat2 (no symlinks,
/// no other file system), and check it is a socket owned by the owner (S1, S2). Wait up to
/// `wait_seconds` for it to appear (inotify, bounded).
struct VerifySource {
  std::string runtime_dir;  ///< opened first; must be owned by `owner`
  std::string relative;     ///< beneath runtime_dir (or absolute, for admin plugins)
  uid_t owner;
  int wait_seconds;
};

/// Create an empty placeholder file (O_CREAT|O_EXCL|O_NOFOLLOW) to mount onto.
struct CreateTarget {
  std::string path;
};

/// Bind-mount the verified source inode onto the target (open_tree + move_mount).
struct BindMount {
  std::string source;
  std::string target;
};

/// Add one named-user ACL entry to the verified inode, through /proc/self/fd. With
/// `only_if_denied`, only when the inode's own mode and ACL deny `uid` those rights.
struct GrantAcl {
  std::string path;  ///< for display; the executor acts on the verified fd
  uid_t uid;
  std::string perms;  ///< "rw" for sockets, "x" for directories
  bool only_if_denied;
  bool directory;  ///< a traversal grant on a directory of the path (acl/group methods)
};

/// Change the verified socket's group to QEMU's and add g+rw (method group).
struct ChangeGroup {
  std::string path;
  gid_t gid;
};

/// Copy a companion file: read as the owner (privileges dropped, no symlinks, capped), write
/// into the lend directory owned by QEMU's user, mode 0400 (S8). With `content`, write that
/// instead (fixed text from the plugin; nothing of the owner's is read).
struct CopyFile {
  std::string source;
  std::string target;
  uid_t owner;
  uid_t qemu_uid;
  std::size_t max_bytes;
  bool optional;
  std::optional<std::string> content = std::nullopt;
};

/// Create the proxy's listening socket in the lend directory, owned by QEMU's user, 0600, and
/// start a proxy process running as the owner that connects to `source` for each client.
struct StartProxy {
  std::string listen_path;
  std::string source;
  uid_t owner;
  gid_t owner_gid;
  uid_t qemu_uid;
  gid_t qemu_gid;
};

/// One step of a prepare.
using Step = std::variant<MakeLendDir, VerifySource, CreateTarget, BindMount, GrantAcl, ChangeGroup,
                          CopyFile, StartProxy>;

/// One line saying what a step does, e.g. "bind-mount /run/user/1000/pipewire-0 onto ...".
std::string describe(const Step& step);
/// One line saying how release undoes a step ("" if it needs no undo).
std::string describe_undo(const Step& step);
/// Machine-readable form of a step: {"action": "...", ...fields}.
nlohmann::json to_json(const Step& step);

/// An environment variable QEMU needs, and whether the domain XML already provides it.
struct EnvNeed {
  std::string name;
  std::string value;
  bool provided = false;
  std::string provided_by;  ///< "qemu:env" or "<audio type='x' attr=...>"
};

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
  std::vector<std::string> exposes;  ///< other entries an acl/group grant makes reachable
  std::vector<std::string> warnings;
};

/// The whole plan for one domain and operation. Pure data.
struct Plan {
  std::string domain;
  std::string uuid;
  QemuIdentity qemu;
  std::string lend_dir;
  std::vector<Step> domain_steps;  ///< before any socket: the lend directory
  std::vector<SocketPlan> sockets;
  std::vector<std::string> errors;    ///< "<socket>: <problem>" lines that fail the start
  std::vector<std::string> warnings;  ///< everything else worth saying

  /// True if the start must fail.
  bool failed() const { return !errors.empty(); }
};

/// What planning may know about the source socket; gathered before planning.
struct SourceFacts {
  std::optional<bool> exists;                      ///< nullopt: could not look
  std::optional<std::vector<std::string>> nearby;  ///< entries of each granted directory
};

/// Everything planning needs, gathered beforehand, so that make_plan makes no system calls.
struct PlanInputs {
  const DomainInfo* domain = nullptr;
  const PluginSet* plugins = nullptr;
  const Policy* policy = nullptr;
  QemuIdentity qemu;
  std::map<std::string, std::optional<User>> owners;  ///< by owner as written
  uid_t uid_min = 1000;
  std::map<std::string, SourceFacts> sources;  ///< by socket name
  Paths paths;
};

/// Turns the gathered inputs into a plan. Pure: no system calls, no I/O.
Plan make_plan(const PlanInputs& in);

/// The plan for people: numbered steps, environment, warnings.
std::string format_plan(const Plan& plan);
/// The plan for programs.
nlohmann::json plan_to_json(const Plan& plan);

/// The default wait for a method that waits (SPEC §2).
inline constexpr int kDefaultWaitSeconds = 5;
/// The most a companion file may hold (S8). The PulseAudio cookie is 256 bytes.
inline constexpr std::size_t kMaxCompanionBytes = 64 * 1024;

}  // namespace sockhook
