#pragma once

#include <sys/types.h>

#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sockhook {

/// A user account, as the password database has it.
struct User {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
  std::string home;
};

/// Looks up a user by name, or by number for an all-digit string. "+N" forces a number
/// (libvirt's qemu.conf convention). nullopt if there is no such user; a number with no
/// passwd entry yields a nameless User when `allow_nameless` is set.
std::optional<User> lookup_user(std::string_view name_or_uid, bool allow_nameless = false);

/// Looks up a group by name or number ("+N" forces a number).
std::optional<gid_t> lookup_group(std::string_view name_or_gid);

/// The group's name, or its number as text.
std::string group_name(gid_t gid);

/// The groups a process of `uid` gets: its primary group and supplementary groups.
std::vector<gid_t> groups_of_uid(uid_t uid, gid_t fallback_gid);

/// The uids of regular (login) users: UID_MIN..UID_MAX of login.defs, both included.
struct UidRange {
  uid_t min = 1000;
  uid_t max = 60000;
  bool contains(uid_t uid) const { return uid >= min && uid <= max; }
};

/// The range in a login.defs text ("KEY VALUE" lines, '#' comments); a key that is absent or
/// not a number keeps shadow's default (1000, 60000).
UidRange parse_login_defs(std::istream& in);

/// The range of /etc/login.defs (`path`); the defaults when the file is missing.
UidRange regular_uid_range(const std::string& path = "/etc/login.defs");

}  // namespace sockhook
