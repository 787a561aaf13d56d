#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

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

/// UID_MIN from /etc/login.defs (1000 if absent): the first uid of a regular user.
uid_t regular_uid_min();

}  // namespace sockhook
