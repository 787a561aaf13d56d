#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <tuple>
#include <variant>

#include <nlohmann/json_fwd.hpp>

namespace pugi {
class xml_node;
}

namespace sockhook {

// ---- The steps of a prepare. Each is plain data; executors carry them out. ----
//
// Each step lists its fields once, as data in `kFields`: step.cpp derives its JSON form and its
// journal record from that list. `describe` and `describe_undo` say in one line what it does
// and how release undoes it. Adding a step: the struct here (and in `Step`), the planner that
// emits it (plan.cpp), and `run_step` for it in the lend/ file that owns its family (reached
// through lend/lends.hpp); what it changes is an effect (journal/effect.hpp).

/// How a field is written as a journal attribute: AsIs writes strings, numbers and bools
/// ("yes"/"no") as they are (plan/journal_attr.hpp); other codecs (journal/effect.hpp) write
/// permissions as text or bytes as hex.
struct AsIs {};

/// One field of a step or an effect `S`: its names in JSON (snake_case) and as a journal
/// attribute (kebab-case), the member that holds it, and how the journal writes it.
template <typename S, typename T, typename C = AsIs>
struct Field {
  const char* json;
  const char* journal;
  T S::*member;
  [[no_unique_address]] C codec{};
};
template <typename S, typename T>
Field(const char*, const char*, T S::*) -> Field<S, T>;
template <typename S, typename T, typename C>
Field(const char*, const char*, T S::*, C) -> Field<S, T, C>;

/// Create the domain's lend directory: root-owned 0700, plus one ACL entry u:QEMU:--x, so
/// that only QEMU's user can traverse it and nobody but root can write it (S4).
struct MakeLendDir {
  static constexpr const char* kAction = "make_lend_dir";
  std::string path;
  uid_t qemu_uid;

  static constexpr std::tuple kFields{
      Field{"path", "path", &MakeLendDir::path},
      Field{"qemu_uid", "qemu-uid", &MakeLendDir::qemu_uid},
  };
  std::string describe() const {
    return "create lend directory " + path + " (root, 0700, ACL u:" + std::to_string(qemu_uid) +
           ":--x)";
  }
  std::string describe_undo() const { return "remove lend directory " + path + " if empty"; }
};

/// Resolve the source socket beneath the owner's runtime directory with openat2 (no symlinks,
/// no other file system), and check it is a socket owned by the owner (S1, S2). Wait up to
/// `wait_seconds` for it to appear (inotify, bounded).
struct VerifySource {
  static constexpr const char* kAction = "verify_source";
  std::string runtime_dir;  ///< opened first; must be owned by `owner`
  std::string relative;     ///< beneath runtime_dir (or absolute, for admin plugins)
  uid_t owner;
  int wait_seconds;

  static constexpr std::tuple kFields{
      Field{"runtime_dir", "runtime-dir", &VerifySource::runtime_dir},
      Field{"relative", "relative", &VerifySource::relative},
      Field{"owner_uid", "owner", &VerifySource::owner},
      Field{"wait_seconds", "wait", &VerifySource::wait_seconds},
  };
  std::string describe() const {
    return "open " + runtime_dir + " and resolve " + relative +
           " beneath it (openat2, no symlinks, no mount crossing); require a socket owned by "
           "uid " +
           std::to_string(owner) + "; wait up to " + std::to_string(wait_seconds) + " s";
  }
  std::string describe_undo() const { return ""; }
};

/// Create an empty placeholder file (O_CREAT|O_EXCL|O_NOFOLLOW) to mount onto.
struct CreateTarget {
  static constexpr const char* kAction = "create_target";
  std::string path;

  static constexpr std::tuple kFields{
      Field{"path", "path", &CreateTarget::path},
  };
  std::string describe() const {
    return "create empty mount point " + path + " (O_EXCL|O_NOFOLLOW)";
  }
  std::string describe_undo() const { return "remove " + path; }
};

/// Bind-mount the verified source inode onto the target (open_tree + move_mount).
struct BindMount {
  static constexpr const char* kAction = "bind_mount";
  std::string source;
  std::string target;

  static constexpr std::tuple kFields{
      Field{"source", "source", &BindMount::source},
      Field{"target", "target", &BindMount::target},
  };
  std::string describe() const {
    return "bind-mount the verified inode of " + source + " onto " + target +
           " (open_tree + move_mount)";
  }
  std::string describe_undo() const {
    return "unmount " + target + " (if it still holds that inode)";
  }
};

/// Add one named-user ACL entry to the verified inode, through /proc/self/fd. With
/// `only_if_denied`, only when the inode's own mode and ACL deny `uid` those rights.
struct GrantAcl {
  static constexpr const char* kAction = "grant_acl";
  std::string path;  ///< for display; the executor acts on the verified fd
  uid_t uid;
  std::string perms;  ///< "rw" for sockets, "x" for directories
  bool only_if_denied;
  bool directory;  ///< a traversal grant on a directory of the path (acl/group methods)

  static constexpr std::tuple kFields{
      Field{"path", "path", &GrantAcl::path},
      Field{"uid", "uid", &GrantAcl::uid},
      Field{"perms", "perms", &GrantAcl::perms},
      Field{"only_if_denied", "only-if-denied", &GrantAcl::only_if_denied},
      Field{"directory", "directory", &GrantAcl::directory},
  };
  std::string describe() const {
    return "add ACL entry u:" + std::to_string(uid) + ":" + perms + " on " +
           (directory ? "directory " : "the verified inode of ") + path +
           (only_if_denied ? " (only if its mode and ACL deny it)" : "");
  }
  std::string describe_undo() const {
    return "remove ACL entry u:" + std::to_string(uid) + " from " + path +
           " and restore its mask exactly (if the inode still matches)";
  }
};

/// Change the verified socket's group to QEMU's and add g+rw (method group).
struct ChangeGroup {
  static constexpr const char* kAction = "change_group";
  std::string path;
  gid_t gid;

  static constexpr std::tuple kFields{
      Field{"path", "path", &ChangeGroup::path},
      Field{"gid", "gid", &ChangeGroup::gid},
  };
  std::string describe() const {
    return "change group of the verified inode of " + path + " to gid " + std::to_string(gid) +
           " and add g+rw";
  }
  std::string describe_undo() const {
    return "restore the group and mode of " + path + " exactly (if the inode still matches)";
  }
};

/// Copy a companion file: read as the owner (privileges dropped, no symlinks, no mount
/// crossed beneath `base`, capped, bounded in time), write into the lend directory owned by
/// QEMU's user, mode 0400 (S8). `base` is the owner's home or runtime directory (or "/" for a
/// plugin's absolute path), named by the password database; the reader opens it, checks its
/// owner, and resolves `relative` beneath it. With `content`, write that instead (fixed text
/// from the plugin; nothing of the owner's is read).
struct CopyFile {
  static constexpr const char* kAction = "copy_file";
  std::string base;
  std::string relative;
  std::string target;
  uid_t owner;
  uid_t qemu_uid;
  std::size_t max_bytes;
  bool optional;
  std::optional<std::string> content = std::nullopt;

  static constexpr std::tuple kFields{
      Field{"base", "base", &CopyFile::base},
      Field{"relative", "relative", &CopyFile::relative},
      Field{"target", "target", &CopyFile::target},
      Field{"owner_uid", "owner", &CopyFile::owner},
      Field{"qemu_uid", "qemu-uid", &CopyFile::qemu_uid},
      Field{"max_bytes", "max-bytes", &CopyFile::max_bytes},
      Field{"optional", "optional", &CopyFile::optional},
      Field{"content", "content", &CopyFile::content},
  };
  /// The file read, for people: base and relative path joined.
  std::string source() const { return base == "/" ? "/" + relative : base + "/" + relative; }
  std::string describe() const {
    auto into = " (owner uid " + std::to_string(qemu_uid) + ", 0400)";
    if (content)
      return "write the plugin's " + std::to_string(content->size()) + " bytes to " + target + into;
    return "copy " + source() + " as uid " + std::to_string(owner) + " (resolved beneath " + base +
           ": no symlinks, no mount crossing, at most " + std::to_string(max_bytes) +
           " bytes) to " + target + into + (optional ? " if it exists" : "");
  }
  std::string describe_undo() const { return "remove " + target; }
};

/// Create the proxy's listening socket in the lend directory, owned by QEMU's user, 0600, and
/// start a proxy process running as the owner that connects to `source` for each client.
struct StartProxy {
  static constexpr const char* kAction = "start_proxy";
  std::string listen_path;
  std::string source;
  uid_t owner;
  gid_t owner_gid;
  uid_t qemu_uid;
  gid_t qemu_gid;
  /// The domain whose QEMU alone is served, "ID:PARTITION" (DomainCgroup, S10). Absent in a
  /// journal written before the check existed: such a proxy is not restarted.
  std::optional<std::string> peer_domain;
  /// True when `source` is this lend's own context socket behind the proxy (StartContext
  /// with behind_proxy, in the same lend directory, which the owner cannot traverse): the hook
  /// opens it (O_PATH, verified: a socket of the owner's) and hands it to the proxy as fd 4,
  /// which connects through /proc/self/fd/4. Absent (false) in older journals.
  std::optional<bool> source_fd = std::nullopt;

  bool context_source() const { return source_fd.value_or(false); }

  static constexpr std::tuple kFields{
      Field{"listen", "listen", &StartProxy::listen_path},
      Field{"source", "source", &StartProxy::source},
      Field{"owner_uid", "owner", &StartProxy::owner},
      Field{"owner_gid", "owner-gid", &StartProxy::owner_gid},
      Field{"qemu_uid", "qemu-uid", &StartProxy::qemu_uid},
      Field{"qemu_gid", "qemu-gid", &StartProxy::qemu_gid},
      Field{"peer_domain", "peer-domain", &StartProxy::peer_domain},
      Field{"source_fd", "source-fd", &StartProxy::source_fd},
  };
  std::string describe() const;
  std::string describe_undo() const {
    return "stop the proxy (through its pidfd) and remove " + listen_path;
  }
};

/// Create a listening socket in the lend directory, owned by QEMU's user, 0600, and start a
/// process running as the owner that hands it to the owner's PipeWire at `source` as a
/// security context (pw_security_context_create) labelled with sockhook's engine, the domain
/// and its UUID, and holds the context's close_fd until release (lend_context.hpp).
struct StartContext {
  static constexpr const char* kAction = "start_context";
  std::string listen_path;
  std::string source;
  uid_t owner;
  gid_t owner_gid;
  uid_t qemu_uid;
  gid_t qemu_gid;
  std::string domain;
  std::string uuid;
  bool capture;
  /// The server the context is made on: "wayland" for a compositor (wp_security_context_v1,
  /// sockhook-wayland-holder); "pipewire" or nullopt (journals written before Wayland
  /// contexts) for PipeWire (sockhook-context-holder).
  std::optional<std::string> server = std::nullopt;
  /// True where no LSM keeps VMs apart (S10): the socket is the owner's (owner uid and gid,
  /// 0600), reachable only by root and by the proxy in front of it (StartProxy::source_fd),
  /// which alone serves QEMU, in this VM only. Absent (false) in older journals: the socket
  /// is the lend itself, QEMU's.
  std::optional<bool> behind_proxy = std::nullopt;

  bool wayland() const { return server == "wayland"; }
  bool private_socket() const { return behind_proxy.value_or(false); }
  /// Who owns the listening socket: QEMU's user, or the owner behind a proxy.
  uid_t socket_uid() const { return private_socket() ? owner : qemu_uid; }
  gid_t socket_gid() const { return private_socket() ? owner_gid : qemu_gid; }

  static constexpr std::tuple kFields{
      Field{"listen", "listen", &StartContext::listen_path},
      Field{"source", "source", &StartContext::source},
      Field{"owner_uid", "owner", &StartContext::owner},
      Field{"owner_gid", "owner-gid", &StartContext::owner_gid},
      Field{"qemu_uid", "qemu-uid", &StartContext::qemu_uid},
      Field{"qemu_gid", "qemu-gid", &StartContext::qemu_gid},
      Field{"domain", "domain", &StartContext::domain},
      Field{"uuid", "uuid", &StartContext::uuid},
      Field{"capture", "capture", &StartContext::capture},
      Field{"server", "server", &StartContext::server},
      Field{"behind_proxy", "behind-proxy", &StartContext::behind_proxy},
  };
  std::string describe() const;
  std::string describe_undo() const {
    return std::string("stop the context holder (through its pidfd; ") +
           (wayland() ? "the compositor then accepts no new client on it"
                      : "PipeWire then drops the VM's clients") +
           ") and remove " + listen_path;
  }
};

/// One step of a prepare.
using Step = std::variant<MakeLendDir, VerifySource, CreateTarget, BindMount, GrantAcl, ChangeGroup,
                          CopyFile, StartProxy, StartContext>;

/// One line saying what a step does, e.g. "bind-mount /run/user/1000/pipewire-0 onto ...".
std::string describe(const Step& step);
/// True if `steps` (one socket's) make a security context on a Wayland compositor.
bool makes_wayland_context(const std::vector<Step>& steps);

/// The StartProxy or StartContext among `steps` that listens on `path` (what serves a journal's
/// proxy entry there), or nullptr.
const Step* serving_step(const std::vector<Step>& steps, const std::string& path);
/// One line saying how release undoes a step ("" if it needs no undo).
std::string describe_undo(const Step& step);
/// Machine-readable form of a step: {"action": "...", ...fields}.
nlohmann::json to_json(const Step& step);

/// Appends the step as a <step action="..." .../> child of `parent` (the journal's form).
void write_step(pugi::xml_node parent, const Step& step);
/// Reads a <step> element back. Throws Error("corrupt journal: ...") if it is malformed.
Step read_step(const pugi::xml_node& node);

}  // namespace sockhook
