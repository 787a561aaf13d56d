#pragma once

#include <sys/types.h>

#include <string>

namespace sockhook {

/// Where sockhook keeps lend directories and its journal. The one place these paths are made.
struct Paths {
  std::string lend_root = "/run/sockhook";        ///< /run/sockhook/<uuid>/ per domain
  std::string state_dir = "/run/sockhook/state";  ///< journals and locks, root 0700
  std::string user_runtime_root = "/run/user";    ///< /run/user/<uid>

  std::string lend_dir(const std::string& uuid) const { return lend_root + "/" + uuid; }
  std::string runtime_dir(uid_t uid) const { return user_runtime_root + "/" + std::to_string(uid); }
};

/// What executors need besides the plan.
struct ExecContext {
  Paths paths;
  std::string self_exe = "/proc/self/exe";  ///< the binary that proxies are started from
};

}  // namespace sockhook
