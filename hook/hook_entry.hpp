#pragma once

#include <string>

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
int run_hook(const HookArgs& args);

/// True if argv[0] says we were started by libvirt from its hooks directory.
bool invoked_as_hook(const std::string& argv0);

}  // namespace sockhook
