#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace sockhook {

/// Where sockhook keeps lend directories and its journal. The one place these paths are made.
struct Paths {
  std::string lend_root = "/run/sockhook";        ///< /run/sockhook/libvirt-<uuid>/ per domain
  std::string state_dir = "/run/sockhook/state";  ///< journals and locks, root 0700
  std::string user_runtime_root = "/run/user";    ///< /run/user/<uid>

  /// A domain's lend directory carries the name of the domain's AppArmor profile
  /// (libvirt-<uuid>), so that one rule, /run/sockhook/@{profile_name}/, gives each VM its own
  /// directory and no other's (dist/apparmor/sockhook).
  std::string lend_dir(const std::string& uuid) const { return lend_root + "/libvirt-" + uuid; }
  std::string runtime_dir(uid_t uid) const { return user_runtime_root + "/" + std::to_string(uid); }
};

/// What executors need besides the plan.
struct ExecContext {
  Paths paths;
  std::string self_exe = "/proc/self/exe";  ///< the binary that proxies are started from
  /// When this run began. Every socket's `wait` counts from here, so that one bound holds for
  /// the whole run of a domain (the largest wait), however many sockets wait (README).
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

}  // namespace sockhook
