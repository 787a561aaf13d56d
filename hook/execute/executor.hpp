#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/paths.hpp"
#include "journal/journal.hpp"
#include "model/policy.hpp"
#include "plan/plan.hpp"

namespace sockhook {

/// Carries out a prepare plan as one transaction (R1): a per-domain lock; the journal entry
/// is written before each side effect (R3). If a required socket fails, everything is rolled
/// back and Error("<socket>: cannot <verb> <object>: <why>") is thrown. An optional socket's
/// failure rolls back that socket alone and is logged.
void execute_prepare(const Plan& plan, const ExecContext& ctx);

/// start begin: `plan` was made from the XML that now carries QEMU's DAC label. If prepare
/// lent to another identity, re-grants to this one. Throws Error if that fails.
void execute_start(const Plan& plan, const ExecContext& ctx);

/// Undoes everything the journal of `uuid` records, newest first, only where the inode still
/// matches (S7, R2). Idempotent; never throws. Returns the problems it met (already logged).
std::vector<std::string> execute_release(const std::string& uuid, const ExecContext& ctx);

/// cleanup --forget, after a release that could not undo everything: drops the journal of
/// `uuid` (and its lock file) and returns, one line each, what its remaining entries may have
/// left on the host, for a person to check (each also logged). Never throws; an empty list
/// when nothing was left.
std::vector<std::string> execute_forget(const std::string& uuid, const ExecContext& ctx);

/// cleanup --stale, for one domain: takes its lock without waiting (a hook that holds it is
/// starting or stopping the domain: nullopt, "busy"), asks `stale()` again while holding it
/// (false: nullopt), and only then releases as execute_release does, under that one lock; with
/// `forget`, a journal that could not be undone is then dropped as execute_forget does, its
/// lines added to `forgotten`. Returns the problems left (none when forgotten). Never throws.
std::optional<std::vector<std::string>> execute_release_if_stale(
    const std::string& uuid, const ExecContext& ctx, const std::function<bool()>& stale,
    bool forget, std::vector<std::string>& forgotten);

/// reconnect begin: checks every lend of `uuid` and restarts dead proxies and context holders that
/// `policy` still allows (a restart is a new lend); a refused one stays as it is, with one log line
/// saying why. Never throws.
std::vector<std::string> execute_reconnect(const std::string& uuid, const ExecContext& ctx,
                                           const Policy& policy);

}  // namespace sockhook

namespace sockhook {

/// refresh: lends the named sockets of `uuid` again from their journal records (a bind lend
/// whose server restarted points at a dead inode), each only if `policy` still allows it; a
/// refused one is left as it is. Never throws; returns the problems (a refusal is one).
std::vector<std::string> execute_refresh(const std::string& uuid, const ExecContext& ctx,
                                         const std::vector<std::string>& sockets,
                                         const Policy& policy);

/// QEMU's configured identity (qemu.conf, else the distribution default), or nullopt when none
/// resolves: what a re-lend compares the journal's identity with.
std::optional<QemuIdentity> configured_qemu_identity();

/// Why `policy` no longer lets socket `s` of `journal` be lent again ("<socket>: not lent
/// again: the policy no longer allows ..."), or nullopt. A re-lend asks the policy as start
/// does (S5): the owner, domain and plugin, and the QEMU identity the journal lends to, which
/// must be `configured` or one the policy names (`qemu =`). Revoking must hold at reconnect and
/// refresh too, not only at the next start.
std::optional<std::string> relend_refusal(const Policy& policy, const Journal& journal,
                                          const JournalSocket& s,
                                          const std::optional<QemuIdentity>& configured);

}  // namespace sockhook
