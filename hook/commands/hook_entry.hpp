#pragma once

#include <string>
#include <string_view>

namespace sockhook {

/// libvirt's arguments: HOOK DOMAIN OPERATION SUBOPERATION EXTRA.
struct HookArgs {
  std::string domain;
  std::string operation;
  std::string sub;
  std::string extra;
};

/// Runs libvirt's hook contract (SPEC §5) with the domain XML on stdin. Never writes to
/// stdout. Returns the exit code: 1 only when a prepare or start must fail.
/// `config_dir`, when not empty, is where policy.conf, sockhook.conf and plugins/ are read
/// from instead of the built-in directory. Only `sockhook hook --config-dir` passes one (tests
/// that run beside an installed sockhook); libvirt's entry never does, and every file is still
/// checked to be root's and not writable by others (S3).
int run_hook(const HookArgs& args, const std::string& config_dir = "");

/// What the hook does for libvirt's operation and sub-operation.
enum class HookAction {
  kNone,       ///< everything else (restore, started, stopped...): exit 0 at once
  kPrepare,    ///< prepare begin: lend
  kStart,      ///< start begin: re-grant to QEMU's final identity
  kRelease,    ///< release end: undo
  kReconnect,  ///< reconnect begin: check lends, restart proxies
  kMigrate,    ///< migrate begin (on the target): refuse what this host would not lend
};
HookAction hook_action(const HookArgs& args);

/// The lower-case UUID of the domain XML `xml`, or "" if it has none that is valid.
std::string uuid_of(std::string_view xml);

/// True if argv[0] says we were started by libvirt from its hooks directory.
bool invoked_as_hook(const std::string& argv0);

}  // namespace sockhook
