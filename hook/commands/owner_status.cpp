#include "commands/owner_status.hpp"

#include "commands/pkexec.hpp"

namespace sockhook {

int ask_owner_status(bool json) {
  std::vector<std::string> args = {kStatusCommand};
  if (json) args.emplace_back("--json");
  return run_through_pkexec({"status", kStatusAction, "nothing was shown"}, args);
}

OwnerLends owner_lends(const Paths& paths) {
  // Stage 1: the caller, from pkexec only.
  auto caller = caller_from_pkexec(kStatusCommand);
  // Stage 2: the journals, only read: nothing is locked, written or undone. Bounded by what
  // they hold (at most kMaxJournalBytes each, one journal per domain with lends) and by the
  // health checks, which never wait (a missing socket is not waited for); the sockets
  // looked at are the caller's alone, chosen by the uid the journal records.
  return {caller, lend_status(paths, caller.uid)};
}

}  // namespace sockhook
