#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace sockhook {

/// The one check for anything sockhook trusts with privileged work (configuration, policy,
/// plugins, the lend root, journals; S3). Why the file or directory with `st` cannot be
/// trusted, or nullopt: it must be owned by one of `trusted` and writable by nobody else (not
/// by others; by its group only if that group is root's). With `root_only`, group and others
/// may have no access at all (the journals).
std::optional<std::string> trust_problem(const struct stat& st,
                                         const std::vector<uid_t>& trusted = {0},
                                         bool root_only = false);

/// Throws Error("<what> is refused: <problem>") if trust_problem finds one.
void require_trusted(const struct stat& st, const std::string& what, bool root_only = false,
                     const std::vector<uid_t>& trusted = {0});

}  // namespace sockhook
