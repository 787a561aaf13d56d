#include "sys/users.hpp"

#include <grp.h>
#include <pwd.h>

#include <charconv>
#include <fstream>
#include <sstream>
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

}  // namespace

std::optional<User> lookup_user(std::string_view spec, bool allow_nameless) {
  bool forced = spec.starts_with('+');
  if (forced) spec.remove_prefix(1);
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (forced || all_digits(spec)) {
    auto n = parse_number(spec);
    if (!n) return std::nullopt;
    ::getpwuid_r(static_cast<uid_t>(*n), &pw, buf.data(), buf.size(), &found);
    if (!found) {
      if (!allow_nameless) return std::nullopt;
      return User{static_cast<uid_t>(*n), static_cast<gid_t>(-1), "", ""};
    }
  } else {
    std::string name(spec);
    ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
    if (!found) return std::nullopt;
  }
  return User{found->pw_uid, found->pw_gid, found->pw_name, found->pw_dir};
}

std::optional<gid_t> lookup_group(std::string_view spec) {
  bool forced = spec.starts_with('+');
  if (forced) spec.remove_prefix(1);
  if (forced || all_digits(spec)) {
    auto n = parse_number(spec);
    if (!n) return std::nullopt;
    return static_cast<gid_t>(*n);
  }
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* found = nullptr;
  std::string name(spec);
  ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
  if (!found) return std::nullopt;
  return found->gr_gid;
}

std::string group_name(gid_t gid) {
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* found = nullptr;
  ::getgrgid_r(gid, &gr, buf.data(), buf.size(), &found);
  return found ? std::string(found->gr_name) : std::to_string(gid);
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
