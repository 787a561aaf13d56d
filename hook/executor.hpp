#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "paths.hpp"
#include "plan.hpp"

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

/// reconnect begin: checks every lend of `uuid` and restarts dead proxies. Never throws.
std::vector<std::string> execute_reconnect(const std::string& uuid, const ExecContext& ctx);

}  // namespace sockhook

namespace sockhook {

/// refresh: lends the named sockets of `uuid` again from their journal records (a bind lend
/// whose server restarted points at a dead inode). Never throws; returns the problems.
std::vector<std::string> execute_refresh(const std::string& uuid, const ExecContext& ctx,
                                         const std::vector<std::string>& sockets);

}  // namespace sockhook
