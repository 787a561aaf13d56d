#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sockhook {

/// Permission bits as ACLs use them: r = 4, w = 2, x = 1.
using Perms = unsigned;

/// "rw" → 6, "x" → 1. Throws Error for anything but r, w, x.
Perms parse_perms(std::string_view text);
/// 6 → "rw-".
std::string perms_text(Perms perms);

/// An inode's access ACL before sockhook touched it: what release needs to put it back.
struct AclState {
  mode_t mode = 0;                   ///< st_mode & 07777
  std::optional<std::string> xattr;  ///< raw system.posix_acl_access bytes; nullopt: none
  std::optional<Perms> entry;        ///< the u:UID entry's perms, if it had one
  std::optional<Perms> mask;         ///< the mask entry's perms, if it had one
};

/// Reads the ACL state of the inode behind `path` (a /proc/self/fd/N magic link) for `uid`.
/// Throws Error.
AclState read_acl_state(const std::string& path, uid_t uid);

/// True if the inode's mode and access ACL (POSIX.1e access check) give a process with `uid`
/// and `groups` all of `perms`. `st` is the inode's fstat.
bool acl_allows(const std::string& path, const struct stat& st, uid_t uid,
                const std::vector<gid_t>& groups, Perms perms);

/// Who else a grant of `perms` to `uid` would give rights to by widening the mask: every entry
/// of the group class (the owning group, named users other than `uid`, named groups) that holds
/// some of `perms` which the mask now withholds, as getfacl prints it ("user:1001:rw-"). Empty:
/// the grant gives nobody but `uid` anything. `path` as for acl_grant_user. Throws Error.
std::vector<std::string> acl_grant_gains(const std::string& path, uid_t uid, Perms perms);

/// The one-line reason a grant is refused when acl_grant_gains found `gains`.
std::string acl_gains_refusal(uid_t uid, Perms perms, const std::vector<std::string>& gains);

/// Adds `perms` to the named-user entry of `uid` (creating it) and widens the mask by exactly
/// `perms`. Refuses (Error, acl_gains_refusal) when widening the mask would give anyone else
/// rights (acl_grant_gains): never widen what anyone but `uid` gets. Acts on `path`, a
/// /proc/self/fd/N magic link. Throws Error.
void acl_grant_user(const std::string& path, uid_t uid, Perms perms);

/// Undoes acl_grant_user given the state recorded before it: puts the u:UID entry back as it
/// was (or removes it), and the mask back as it was; if no named entry remains and there was
/// no mask before, drops the mask, so that the kernel removes the ACL and restores the group
/// mode bits. The result is byte-identical to `prior` unless someone else changed the ACL in
/// between (their changes are kept). Throws Error.
void acl_revoke_user(const std::string& path, uid_t uid, const AclState& prior);

/// The text getfacl would print for the entries (acl_to_text), for tests and status.
std::string acl_text(const std::string& path);

}  // namespace sockhook
