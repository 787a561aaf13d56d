#include "sys/trust.hpp"

#include <algorithm>

#include "base/error.hpp"

namespace sockhook {

std::optional<std::string> trust_problem(const struct stat& st, const std::vector<uid_t>& trusted,
                                         bool root_only) {
  if (std::find(trusted.begin(), trusted.end(), st.st_uid) == trusted.end())
    return "it is owned by uid " + std::to_string(st.st_uid) + ", not root";
  if (st.st_mode & S_IWOTH) return "it is writable by others";
  if ((st.st_mode & S_IWGRP) && st.st_gid != 0) return "it is writable by its group";
  if (root_only && (st.st_mode & 077)) return "it is not root-only (group or others have access)";
  return std::nullopt;
}

void require_trusted(const struct stat& st, const std::string& what, bool root_only,
                     const std::vector<uid_t>& trusted) {
  if (auto problem = trust_problem(st, trusted, root_only))
    throw Error(what + " is refused: " + *problem);
}

}  // namespace sockhook
