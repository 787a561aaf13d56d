#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <tuple>
#include <variant>

#include "plan/step.hpp"
#include "sys/acl.hpp"
#include "sys/resolve.hpp"

namespace sockhook {

// ---- What a step changed on the host: effects, recorded before they happen (R3). ----
//
// Each effect is plain data, like a step: its `kKind` is the journal's kind="..." and its
// `kFields` list its attributes in the order the journal writes them, after kind, socket and
// path (journal.cpp writes and reads every effect with that one list). `describe` says what
// it may leave on the host if it is never undone. Its undo and its status check live in the
// lend/ file that makes it: `undo(const X&, const Undoing&)` and, when it has something to
// say about a lend's health, `check_health(const X&, ...)` (lend/lends.hpp gathers them).
// Adding an effect: the struct here (and in `Effect`), and those functions in its lend/ file.

/// Journal codecs beyond AsIs (plan/journal_attr.hpp), for the kFields of effects.
struct PermsText {};  ///< permission bits as text: 6 ↔ "rw-"
struct Hex {};        ///< raw bytes (an ACL xattr) as lower-case hex digits
void put_value(PermsText, pugi::xml_node& node, const char* name, Perms value);
void get_value(PermsText, const pugi::xml_node& node, const char* name, Perms& value);
void put_value(Hex, pugi::xml_node& node, const char* name, const std::string& value);
void get_value(Hex, const pugi::xml_node& node, const char* name, std::string& value);

/// What every effect records first.
struct EffectBase {
  std::string socket;  ///< the socket it belongs to; "" for the domain (the lend directory)
  std::string path;    ///< what it acted on, as a person reads it
};

/// Created the domain's lend directory `path` (MakeLendDir).
struct DirMade : EffectBase {
  static constexpr const char* kKind = "dir";
  static constexpr std::tuple<> kFields{};
  std::string describe() const { return "the lend directory " + path; }
};

/// Created the file `path` inside the lend directory (a placeholder, a copy).
struct FileMade : EffectBase {
  static constexpr const char* kKind = "file";
  static constexpr std::tuple<> kFields{};
  std::string describe() const { return "the file " + path; }
};

/// Bind-mounted the source inode dev:ino onto `path`.
struct Mounted : EffectBase {
  static constexpr const char* kKind = "mount";
  dev_t dev = 0;
  ino_t ino = 0;

  static constexpr std::tuple kFields{
      Field{"dev", "dev", &Mounted::dev},
      Field{"ino", "ino", &Mounted::ino},
  };
  InodeId inode() const { return {dev, ino}; }
  void set_inode(InodeId id) {
    dev = id.dev;
    ino = id.ino;
  }
  std::string describe() const { return "a bind mount on " + path; }
};

/// A change on an inode of the owner's that other domains may share (an ACL entry, a group):
/// where to find the inode again, resolved securely beneath `base` (`relative` empty: `base`
/// itself) or through the mount target `via_target`, and its mode before.
struct InodeChange : EffectBase {
  std::string base;
  std::string relative;
  uid_t owner = 0;
  std::string via_target;
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t prior_mode = 0;

  static constexpr std::tuple kPlaceFields{
      Field{"base", "base", &InodeChange::base},
      Field{"relative", "relative", &InodeChange::relative},
      Field{"owner_uid", "owner", &InodeChange::owner},
      Field{"via_target", "via-target", &InodeChange::via_target},
      Field{"dev", "dev", &InodeChange::dev},
      Field{"ino", "ino", &InodeChange::ino},
      Field{"prior_mode", "prior-mode", &InodeChange::prior_mode},
  };
  InodeId inode() const { return {dev, ino}; }
  void set_inode(InodeId id) {
    dev = id.dev;
    ino = id.ino;
  }
  std::string inode_text() const {
    return "inode " + std::to_string(dev) + ":" + std::to_string(ino);
  }
};

/// Added u:`uid`:`perms` on the inode; `prior_*` say how its ACL was before the first domain's
/// grant (lend_acl.cpp).
struct AclGranted : InodeChange {
  static constexpr const char* kKind = "acl";
  uid_t uid = 0;
  Perms perms = 0;
  std::optional<std::string> prior_acl;  ///< the raw xattr; nullopt: it had none
  std::optional<Perms> prior_entry;      ///< its u:`uid` entry, if it had one
  std::optional<Perms> prior_mask;       ///< its mask, if it had one

  static constexpr auto kFields = std::tuple_cat(
      kPlaceFields, std::tuple{
                        Field{"uid", "uid", &AclGranted::uid},
                        Field{"perms", "perms", &AclGranted::perms, PermsText{}},
                        Field{"prior_acl", "prior-acl", &AclGranted::prior_acl, Hex{}},
                        Field{"prior_entry", "prior-entry", &AclGranted::prior_entry, PermsText{}},
                        Field{"prior_mask", "prior-mask", &AclGranted::prior_mask, PermsText{}},
                    });
  /// Whom the change is for: domains that grant the same uid on one inode share it.
  unsigned shared_id() const { return uid; }
  AclState prior() const { return {prior_mode, prior_acl, prior_entry, prior_mask}; }
  void set_prior(const AclState& s) {
    prior_mode = s.mode;
    prior_acl = s.xattr;
    prior_entry = s.entry;
    prior_mask = s.mask;
  }
  std::string describe() const {
    return "ACL entry u:" + std::to_string(uid) + ":" + perms_text(perms) + " on " + inode_text() +
           " (last seen as " + path + ")";
  }
};

/// Changed the inode's group to `gid` and added g+rw; `prior_gid` and `prior_mode` are how it
/// was before the first domain's change.
struct GroupChanged : InodeChange {
  static constexpr const char* kKind = "group";
  gid_t gid = 0;
  gid_t prior_gid = 0;

  static constexpr auto kFields =
      std::tuple_cat(kPlaceFields, std::tuple{
                                       Field{"gid", "gid", &GroupChanged::gid},
                                       Field{"prior_gid", "prior-gid", &GroupChanged::prior_gid},
                                   });
  unsigned shared_id() const { return gid; }
  std::string describe() const {
    return "group " + std::to_string(gid) + " and g+rw on " + inode_text() + " (last seen as " +
           path + "; it had group " + std::to_string(prior_gid) + ")";
  }
};

/// Started a process of the owner's listening on `path`: a proxy or a context's holder (both
/// are stopped, checked and shown alike; the journal calls them kind="proxy").
struct ProxyStarted : EffectBase {
  static constexpr const char* kKind = "proxy";
  pid_t pid = 0;                      ///< 0 until it is known
  unsigned long long starttime = 0;   ///< /proc/PID/stat field 22
  std::string label;                  ///< its --label (shows in ps)
  uid_t owner = 0;                    ///< whom it runs as
  unsigned long long listen_ino = 0;  ///< the listening socket's inode (diagnosis only:
                                      ///< processes are never found by their sockets)

  static constexpr std::tuple kFields{
      Field{"pid", "pid", &ProxyStarted::pid},
      Field{"starttime", "starttime", &ProxyStarted::starttime},
      Field{"label", "label", &ProxyStarted::label},
      Field{"owner_uid", "owner", &ProxyStarted::owner},
      Field{"listen_ino", "listen-ino", &ProxyStarted::listen_ino},
  };
  std::string describe() const {
    return "the proxy pid " + std::to_string(pid) + " listening on " + path;
  }
};

/// One recorded side effect.
using Effect = std::variant<DirMade, FileMade, Mounted, AclGranted, GroupChanged, ProxyStarted>;

/// The socket and path every effect has.
inline const EffectBase& base_of(const Effect& e) {
  return std::visit([](const EffectBase& b) -> const EffectBase& { return b; }, e);
}
/// "dir", "file", ... as the journal's kind attribute says.
inline const char* kind_of(const Effect& e) {
  return std::visit([](const auto& x) { return x.kKind; }, e);
}
/// What `e` may have left on the host if it is never undone, as a person checks it.
inline std::string left_behind(const Effect& e) {
  const auto& b = base_of(e);
  return (b.socket.empty() ? std::string() : b.socket + ": ") +
         std::visit([](const auto& x) { return x.describe(); }, e);
}

/// What an undo (or a reconnect) could not do: nullopt when it did everything, else one line
/// saying what is left. The one shape for "this undo had problems".
using UndoProblem = std::optional<std::string>;

}  // namespace sockhook
