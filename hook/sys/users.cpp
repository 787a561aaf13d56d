#include "sys/users.hpp"

#include <grp.h>
#include <pwd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <type_traits>
#include <vector>

namespace sockhook {
namespace {

std::optional<unsigned long> parse_number(std::string_view s) {
  if (s.empty()) return std::nullopt;
  unsigned long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > 0xfffffffeUL) return std::nullopt;
  return v;
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

/// A user or group as qemu.conf names it: "+N" (a number, forced) or all digits is a number,
/// anything else a name.
struct IdSpec {
  bool numeric = false;
  std::optional<unsigned long> number;  ///< numeric: nullopt if it is no valid id
  std::string name;
};

IdSpec parse_id_spec(std::string_view spec) {
  bool forced = spec.starts_with('+');
  if (forced) spec.remove_prefix(1);
  if (forced || all_digits(spec)) return {true, parse_number(spec), ""};
  return {false, std::nullopt, std::string(spec)};
}

/// One reentrant lookup in the password or group database: `call(&entry, buffer, size,
/// &found)` is getpwnam_r and friends; `read` takes what it needs from the entry while its
/// buffer lives. nullopt if there is no such entry.
template <typename Entry, typename Call, typename Read>
auto db_lookup(Call call, Read read) -> std::optional<std::invoke_result_t<Read, const Entry&>> {
  std::vector<char> buf(16384);
  Entry entry{};
  Entry* found = nullptr;
  call(&entry, buf.data(), buf.size(), &found);
  if (!found) return std::nullopt;
  return read(*found);
}

User to_user(const struct passwd& pw) { return User{pw.pw_uid, pw.pw_gid, pw.pw_name, pw.pw_dir}; }

std::optional<User> user_of_uid(uid_t uid) {
  return db_lookup<struct passwd>([&](auto... out) { return ::getpwuid_r(uid, out...); }, to_user);
}

}  // namespace

std::optional<User> lookup_user(std::string_view spec, bool allow_nameless) {
  auto id = parse_id_spec(spec);
  if (!id.numeric)
    return db_lookup<struct passwd>(
        [&](auto... out) { return ::getpwnam_r(id.name.c_str(), out...); }, to_user);
  if (!id.number) return std::nullopt;
  auto uid = static_cast<uid_t>(*id.number);
  auto user = user_of_uid(uid);
  if (user || !allow_nameless) return user;
  return User{uid, static_cast<gid_t>(-1), "", ""};
}

std::optional<gid_t> lookup_group(std::string_view spec) {
  auto id = parse_id_spec(spec);
  if (!id.numeric)
    return db_lookup<struct group>(
        [&](auto... out) { return ::getgrnam_r(id.name.c_str(), out...); },
        [](const struct group& gr) { return gr.gr_gid; });
  if (!id.number) return std::nullopt;
  return static_cast<gid_t>(*id.number);
}

std::string group_name(gid_t gid) {
  auto name =
      db_lookup<struct group>([&](auto... out) { return ::getgrgid_r(gid, out...); },
                              [](const struct group& gr) { return std::string(gr.gr_name); });
  return name ? *name : std::to_string(gid);
}

std::vector<gid_t> groups_of_uid(uid_t uid, gid_t fallback_gid) {
  auto user = user_of_uid(uid);
  if (!user) return {fallback_gid};
  int n = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(n));
  // libvirt starts QEMU with the configured group and the user's supplementary groups.
  if (::getgrouplist(user->name.c_str(), fallback_gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<std::size_t>(n));
    ::getgrouplist(user->name.c_str(), fallback_gid, groups.data(), &n);
  }
  groups.resize(static_cast<std::size_t>(n));
  return groups;
}

UidRange parse_login_defs(std::istream& in) {
  UidRange range;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (!(words >> key >> value)) continue;
    if (key == "UID_MIN") {
      if (auto n = parse_number(value)) range.min = static_cast<uid_t>(*n);
    } else if (key == "UID_MAX") {
      if (auto n = parse_number(value)) range.max = static_cast<uid_t>(*n);
    }
  }
  return range;
}

UidRange regular_uid_range(const std::string& path) {
  std::ifstream in(path);
  return parse_login_defs(in);
}

}  // namespace sockhook
