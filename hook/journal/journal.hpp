#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/paths.hpp"
#include "journal/effect.hpp"
#include "model/domain_xml.hpp"
#include "plan/step.hpp"
#include "sys/fd.hpp"
#include "sys/resolve.hpp"

namespace sockhook {

/// One socket of a domain, as prepare lent it: enough to undo it, report it in `status`, and
/// lend it again (`refresh`, `start` with another QEMU identity) without the domain XML.
struct JournalSocket {
  std::string name;
  std::string plugin;
  Method method = Method::kBind;  ///< resolved: never kAuto
  std::string owner;              ///< user name
  uid_t owner_uid = 0;
  std::string source;
  std::string target;
  bool required = true;
  std::vector<Step> steps;  ///< the plan's steps for this socket
};

/// A domain's journal: /run/sockhook/state/<uuid>.xml, root 0600.
struct Journal {
  std::string domain;
  std::string uuid;
  std::string lend_dir;
  uid_t qemu_uid = 0;
  gid_t qemu_gid = 0;
  std::vector<JournalSocket> sockets;
  std::vector<Effect> entries;  ///< oldest first; undone newest first

  /// The socket record of `name`, or nullptr.
  const JournalSocket* find_socket(const std::string& name) const;
};

/// The most a journal may hold: load reads no more, and save refuses to write more, so that
/// every journal prepare writes can guide its undo again.
inline constexpr std::size_t kMaxJournalBytes = 4 * 1024 * 1024;

/// The journal as XML text (pugixml).
std::string journal_to_xml(const Journal& journal);
/// Parses journal text. Throws Error("corrupt journal: ...") for anything malformed.
Journal journal_from_xml(std::string_view xml);

/// Hex for raw bytes (the ACL xattr) and back; from_hex throws Error on bad input.
std::string to_hex(std::string_view bytes);
std::string from_hex(std::string_view hex);

/// Which journal file a UUID has: its inode and change time. A prepare rewrites the journal (a
/// new inode, write_file_atomic) or removes it, so another version means that a hook of the
/// domain ran in between.
struct JournalVersion {
  InodeId inode;
  long long ctime_sec = 0;
  long long ctime_nsec = 0;
  bool operator==(const JournalVersion&) const = default;
};

/// The root-only state directory, holding journals and locks.
class JournalStore {
 public:
  /// Opens `state_dir` (creating it and its parent when `create`). Throws Error if it is not a
  /// root-owned 0700 directory. With `create` false, a missing directory gives an empty store.
  JournalStore(const Paths& paths, bool create);

  /// True if the state directory exists.
  bool exists() const { return dir_.valid(); }
  const Fd& dir() const { return dir_; }

  /// The journal of `uuid`, or nullopt if there is none. Throws Error if it is corrupt.
  std::optional<Journal> load(const std::string& uuid) const;
  /// Writes the journal atomically (temp + fsync + rename), mode 0600.
  void save(const Journal& journal) const;
  /// True if `uuid` has a journal.
  bool has(const std::string& uuid) const;
  /// Deletes the journal of `uuid` (missing is fine).
  void remove(const std::string& uuid) const;
  /// The UUIDs that have a journal, sorted.
  std::vector<std::string> uuids() const;
  /// The version of `uuid`'s journal file now, or nullopt if it has none.
  std::optional<JournalVersion> version(const std::string& uuid) const;

 private:
  Fd dir_;
};

}  // namespace sockhook
