#include "execute/executor.hpp"

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>

#include "base/error.hpp"
#include "base/log.hpp"
#include "execute/locked_domain.hpp"
#include "host/qemu_identity.hpp"
#include "journal/journal.hpp"
#include "journal/lock.hpp"
#include "journal/transaction.hpp"
#include "lend/lends.hpp"
#include "sys/root_dir.hpp"

namespace sockhook {
namespace {

JournalSocket record_of(const SocketPlan& s) {
  return JournalSocket{s.request.name, s.request.plugin,   s.method,
                       s.owner.name,   s.owner.uid,        s.source,
                       s.target,       s.request.required, s.steps};
}

/// Undoes the entries of `journal` at `order` (indices, newest first: see undo_order), and drops
/// the ones that were undone. Entries that failed stay, so that a later release can try again.
/// Never throws. `journal.entries` holds, at every moment, what is still to undo: an ACL undo
/// writes it to `store` before it lets go of the inode's lock, so that other domains see the grant
/// gone.
std::vector<std::string> undo_entries(const JournalStore& store, Journal& journal,
                                      const std::vector<std::size_t>& order) {
  std::vector<std::string> problems;
  // Descending indices: erasing entry i leaves every index still to come in place.
  for (auto i : order) {
    const Effect e = journal.entries[i];  // a copy: `forget` erases the original
    bool forgotten = false;
    auto forget = [&] {
      Journal without = journal;
      without.entries.erase(without.entries.begin() + static_cast<std::ptrdiff_t>(i));
      store.save(without);
      journal.entries = std::move(without.entries);
      forgotten = true;
    };
    // One entry's undo is a stage: whatever it throws is its problem, and the next one runs.
    auto undone = attempt<std::exception>([&] {
      return undo_effect(e, Undoing{store, journal.uuid, forget});
    });
    UndoProblem problem = undone ? *undone.value : UndoProblem(undone.what());
    if (!problem) {
      if (!forgotten)
        journal.entries.erase(journal.entries.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    const auto& socket = base_of(e).socket;
    problems.push_back((socket.empty() ? "" : socket + ": ") + *problem);
  }
  return problems;
}

/// Undoes everything the journal of `d` records, newest first, and deletes it; what could not
/// be undone stays in it for the next try (and in `d.journal`). Never throws: returns the
/// problems, each logged.
std::vector<std::string> undo_journal(LockedDomain& d) {
  std::vector<std::string> problems;
  if (d.unreadable) {
    d.quarantine();
    problems.push_back(*d.unreadable);
  }
  auto failed = problem_of([&] {
    if (!d.journal) return;
    auto more = undo_entries(d.store, *d.journal, undo_order(d.journal->entries));
    problems.insert(problems.end(), more.begin(), more.end());
    if (d.journal->entries.empty()) {
      d.store.remove(d.uuid);
      d.journal.reset();
    } else {
      d.store.save(*d.journal);  // what could not be undone, for the next try
    }
  });
  if (failed) problems.push_back(*failed);
  for (const auto& p : problems) log_warning("release " + d.uuid + ": " + p);
  return problems;
}

/// What the journal of `d` may have left on the host, each logged for a person to check; then
/// the journal goes (an unreadable one moved aside), and its lock file with it. What its
/// entries changed is not touched.
std::vector<std::string> forget_journal(LockedDomain& d) {
  d.quarantine();
  std::vector<std::string> left;
  if (d.unreadable) left.push_back(*d.unreadable);
  if (d.journal)
    for (const auto& e : d.journal->entries) left.push_back(left_behind(e));
  d.drop();
  for (const auto& l : left)
    log_warning("cleanup --forget " + d.uuid + ": dropped, may remain: " + l);
  return left;
}

/// Runs plans and sockets through the journal of one locked domain.
class DomainExecutor {
 public:
  explicit DomainExecutor(const LockedDomain& d) : ctx_(d.real), store_(d.store) {}

  /// Lends every socket of `plan` as one transaction (R1). `leftovers` are entries an earlier
  /// release could not undo yet; they stay at the head of the new journal, so that no later
  /// release forgets them.
  void prepare(const Plan& plan, std::vector<Effect> leftovers = {}) {
    Journal journal;
    journal.entries = std::move(leftovers);
    journal.domain = plan.domain;
    journal.uuid = plan.uuid;
    journal.lend_dir = plan.lend_dir;
    journal.qemu_uid = plan.qemu.uid;
    journal.qemu_gid = plan.qemu.gid;
    for (const auto& s : plan.sockets) journal.sockets.push_back(record_of(s));
    Transaction tx(store_, journal);
    tx.save();
    // The domain's steps: its lend directory. A failure takes everything back.
    auto lend_dir = attempt([&] {
      Fd dir;
      for (const auto& step : plan.domain_steps)
        if (const auto* d = std::get_if<MakeLendDir>(&step)) dir = make_dir(tx, *d);
      return dir;
    });
    if (!lend_dir) {
      abort_all(journal);
      throw *lend_dir.error;
    }
    // Each socket's steps: a required socket's failure takes everything back.
    for (const auto& s : plan.sockets) {
      auto mark = journal.entries.size();
      auto ran = attempt([&] { run_socket(tx, journal.sockets, s.request.name, *lend_dir.value); });
      if (ran) continue;
      auto line = s.request.name + ": " + ran.what();
      if (s.request.required) {
        abort_all(journal);
        throw Error(line, ran.error->err());
      }
      // An optional socket: take back its own changes and go on without it.
      for (const auto& p : undo_socket(journal, s.request.name, mark)) log_warning(p);
      std::erase_if(journal.sockets,
                    [&](const JournalSocket& js) { return js.name == s.request.name; });
      tx.save();
      log_warning(plan.domain + ": " + line + " (optional socket skipped)");
    }
    if (journal.sockets.empty()) abort_all(journal);
  }

  /// Lends one socket again from its journal record (refresh, or a new QEMU identity).
  void run_socket(Transaction& tx, const std::vector<JournalSocket>& sockets,
                  const std::string& name, const Fd& lend_dir) {
    const JournalSocket* s = nullptr;
    for (const auto& js : sockets)
      if (js.name == name) s = &js;
    if (!s) throw Error("no such socket in the journal");
    const auto& journal = tx.journal();
    SocketRun run{.socket = s->name,
                  .verb = traits(s->method).verb,
                  .tx = tx,
                  .ctx = ctx_,
                  .lend_dir = lend_dir,
                  .lend_dir_path = journal.lend_dir,
                  .qemu_uid = journal.qemu_uid,
                  .qemu_gid = journal.qemu_gid,
                  .label = journal.domain + "/" + s->name + " " + journal.uuid,
                  .spec = {},
                  .source = {},
                  .target = {},
                  .mounted_target = {}};
    for (const auto& step : s->steps) run_planned_step(run, step);
  }

  /// Undoes the entries of socket `name` recorded at or after `mark`.
  std::vector<std::string> undo_socket(Journal& journal, const std::string& name,
                                       std::size_t mark = 0) {
    return undo_entries(store_, journal, undo_order(journal.entries, name, mark));
  }

 private:
  Fd make_dir(Transaction& tx, const MakeLendDir& step) {
    return in_context("cannot create lend directory " + step.path, [&] {
      tx.record(DirMade{{"", step.path}});
      Fd root = ensure_root_dir(dir_name(step.path), 0711);
      return make_lend_dir(root, base_name(step.path), step.qemu_uid);
    });
  }

  /// Undoes everything and deletes the journal: prepare failed.
  void abort_all(Journal& journal) {
    auto problems = undo_entries(store_, journal, undo_order(journal.entries));
    for (const auto& p : problems) log_warning(journal.domain + ": rollback: " + p);
    auto dropped = attempt([&] {
      if (journal.entries.empty()) {
        store_.remove(journal.uuid);
      } else {
        store_.save(journal);
      }
    });
    if (!dropped) log_warning(journal.domain + ": rollback: " + dropped.what());
  }

  const ExecContext& ctx_;
  const JournalStore& store_;
};

/// Takes back what the journal of `d` records (problems logged after `why`), then lends `plan`;
/// entries that could not be undone stay in the new journal for the next release.
void lend_anew(LockedDomain& d, const Plan& plan, const std::string& why) {
  for (const auto& p : undo_journal(d)) log_warning(plan.domain + ": " + why + p);
  std::vector<Effect> leftovers;
  if (d.journal) leftovers = std::move(d.journal->entries);
  DomainExecutor(d).prepare(plan, std::move(leftovers));
}

}  // namespace

void execute_prepare(const Plan& plan, const ExecContext& ctx) {
  // The domain's lock, and the journal of a prepare that was never released (a crash, a killed
  // hook). Lent or rolled back, a domain left without a journal keeps no lock file (R2).
  LockedDomain d(ctx, JournalStore(ctx.paths, true), plan.uuid);
  // Take back what that journal records, then lend the plan as one transaction (R1).
  lend_anew(d, plan, "earlier lend: ");
}

void execute_start(const Plan& plan, const ExecContext& ctx) {
  // The domain's lock, and what prepare lent.
  LockedDomain d(ctx, JournalStore(ctx.paths, true), plan.uuid);
  if (!d.journal) {
    if (d.unreadable) log_warning(plan.domain + ": " + *d.unreadable);
    return;  // nothing was lent (or nothing we can trust): nothing to verify
  }
  // Lent to the identity QEMU runs as: nothing to do.
  const auto& lent = *d.journal;
  if (lent.qemu_uid == plan.qemu.uid && lent.qemu_gid == plan.qemu.gid) return;
  // QEMU runs as someone else than prepare assumed: lend again, to the right identity.
  log_info(plan.domain + ": QEMU runs as " + std::to_string(plan.qemu.uid) + ":" +
           std::to_string(plan.qemu.gid) + ", not " + std::to_string(lent.qemu_uid) + ":" +
           std::to_string(lent.qemu_gid) + " as prepare assumed; lending again");
  lend_anew(d, plan, "");
}

std::vector<std::string> execute_release(const std::string& uuid, const ExecContext& ctx) {
  std::vector<std::string> problems;
  auto failed = problem_of([&] {
    // The domain's lock: a release must not give up and leave the lend behind (DomainLock).
    auto d = LockedDomain::existing(ctx, uuid, DomainLock::Waiting::kTakeOver);
    if (!d) return;
    // Undo what its journal records; with nothing left, the lock file goes too (LockedDomain).
    problems = undo_journal(*d);
  });
  if (!failed) return problems;
  log_warning("release " + uuid + ": " + *failed);
  return {*failed};
}

/// How long cleanup --stale waits for a domain's lock before it leaves the domain alone.
constexpr int kStaleLockWaitSeconds = 1;

std::optional<std::vector<std::string>> execute_release_if_stale(
    const std::string& uuid, const ExecContext& ctx, const std::function<bool()>& stale,
    bool forget, std::vector<std::string>& forgotten) {
  // Waited for a moment only, and never taken over: a hook that holds the lock is starting or
  // stopping the domain, which is then in use (R4). The moment is for a hook killed just now:
  // the kernel ends its children (fork_child: they die with it, and hold no lock past their
  // first instructions anyway) only after it has reported the hook's death. The lock is taken
  // once and held from the check to the last undo, so no prepare or start of this domain can
  // run in between (it waits for us and then lends anew).
  auto locked = attempt([&] {
    return LockedDomain::existing(ctx, uuid, DomainLock::Waiting::kGiveUp, kStaleLockWaitSeconds);
  });
  if (!locked) return std::nullopt;
  auto& d = *locked.value;
  if (!d) return std::vector<std::string>{};
  // Decided again under the lock: a start that finished while we waited has a QEMU now.
  if (!stale()) return std::nullopt;
  auto problems = undo_journal(*d);
  if (problems.empty() || !forget || !d->journal) return problems;
  // The person asked to end it: say why and what may stay, then drop the journal, still
  // under the same lock.
  for (const auto& p : problems) forgotten.push_back(uuid + ": not undone: " + p);
  std::vector<std::string> left;
  if (auto failed = problem_of([&] { left = forget_journal(*d); }))
    forgotten.push_back(uuid + ": cannot drop the journal: " + *failed);
  for (const auto& l : left)
    forgotten.push_back(uuid + ": dropped from the journal, may remain: " + l);
  return std::vector<std::string>{};
}

std::vector<std::string> execute_forget(const std::string& uuid, const ExecContext& ctx) {
  std::vector<std::string> left;
  auto failed = problem_of([&] {
    // The domain's lock, taken over as release takes it.
    if (auto d = LockedDomain::existing(ctx, uuid, DomainLock::Waiting::kTakeOver))
      left = forget_journal(*d);
  });
  if (failed) {
    log_warning("cleanup --forget " + uuid + ": cannot drop the journal: " + *failed);
    left.push_back("cannot drop the journal: " + *failed);
  }
  return left;
}

namespace {

/// Runs `body(d, tx, journal, problems)` on the journal of `uuid` under the domain's lock; does
/// nothing if there is none. The never-throw edge of reconnect and refresh: what the body
/// throws is one more problem.
template <class Body>
std::vector<std::string> with_journal(const std::string& uuid, const ExecContext& ctx, Body body) {
  std::vector<std::string> problems;
  auto failed = problem_of([&] {
    auto d = LockedDomain::existing(ctx, uuid);
    if (!d) return;
    if (d->unreadable) problems.push_back(*d->unreadable);
    if (!d->journal) return;
    Transaction tx(d->store, *d->journal);
    body(*d, tx, *d->journal, problems);
  });
  if (failed) problems.push_back(*failed);
  return problems;
}

}  // namespace

std::optional<QemuIdentity> configured_qemu_identity() {
  // None resolves: only an identity the policy names may receive.
  return value_or_none([] { return resolve_qemu_identity(std::nullopt, load_qemu_conf()); });
}

std::optional<std::string> relend_refusal(const Policy& policy, const Journal& journal,
                                          const JournalSocket& s,
                                          const std::optional<QemuIdentity>& configured) {
  if (!policy.allows(journal.uuid, s.owner, s.owner_uid, s.plugin))
    return s.name + ": not lent again: the policy no longer allows " + s.owner + " to lend '" +
           s.plugin + "' to this domain (what is lent stays until release)";
  // Who receives it, decided as start decides it (S5): the identity prepare lent to is treated
  // as a DAC label's, so it must be the configured one or one the policy still names (`qemu =`).
  QemuIdentity recorded{journal.qemu_uid, journal.qemu_gid, "+" + std::to_string(journal.qemu_uid),
                        "+" + std::to_string(journal.qemu_gid), "DAC label"};
  std::vector<std::string> ignored;
  auto allowed = resolve_allowed_identities(policy.qemu_identities(journal.uuid), ignored);
  auto decision = decide_qemu_identity(recorded, configured, allowed);
  if (decision.verdict != IdentityVerdict::kRefused) return std::nullopt;
  return s.name + ": not lent again: the policy no longer allows QEMU identity " + recorded.user +
         ":" + recorded.group + " for this domain (" + decision.why +
         "; what is lent stays until release)";
}

std::vector<std::string> execute_reconnect(const std::string& uuid, const ExecContext& ctx,
                                           const Policy& policy) {
  const auto configured = configured_qemu_identity();
  auto problems = with_journal(
      uuid, ctx,
      [&](const LockedDomain& d, Transaction& tx, Journal& journal, std::vector<std::string>& out) {
        for (std::size_t i = 0; i < journal.entries.size(); ++i) {
          const auto* served = std::get_if<ProxyStarted>(&journal.entries[i]);
          if (!served || proxy_alive(*served)) continue;
          const auto e = *served;  // a copy: the restart rewrites the entry
          // The process that serves the lend: a proxy, or a context's holder.
          const auto* s = journal.find_socket(e.socket);
          const Step* serving = s ? serving_step(s->steps, e.path) : nullptr;
          if (!serving) continue;
          const char* what =
              std::holds_alternative<StartProxy>(*serving) ? "proxy" : "context holder";
          // A new proxy or context is a new lend: only with the policy's consent.
          if (auto refused = relend_refusal(policy, journal, *s, configured)) {
            log_warning(journal.domain + ": " + *refused);
            continue;
          }
          auto label = journal.domain + "/" + e.socket + " " + journal.uuid;
          auto problem = restart_served(tx, i, s->steps, d.real, label, journal.qemu_gid);
          if (problem) {
            out.push_back(e.socket + ": " + *problem);
          } else {
            log_info(journal.domain + ": " + e.socket + ": " + what + " restarted");
          }
        }
      });
  for (const auto& p : problems) log_warning("reconnect " + uuid + ": " + p);
  return problems;
}

std::vector<std::string> execute_refresh(const std::string& uuid, const ExecContext& ctx,
                                         const std::vector<std::string>& sockets,
                                         const Policy& policy) {
  const auto configured = configured_qemu_identity();
  return with_journal(
      uuid, ctx,
      [&](const LockedDomain& d, Transaction& tx, Journal& journal, std::vector<std::string>& out) {
        DomainExecutor exec(d);
        Fd lend_dir = open_lend_dir(journal.lend_dir);
        for (const auto& name : sockets) {
          // Asked before anything is undone: a refused socket keeps its lend
          // (stale, it reaches nothing new) until release.
          const auto* s = journal.find_socket(name);
          if (auto refused = s ? relend_refusal(policy, journal, *s, configured) : std::nullopt) {
            out.push_back(*refused);
            continue;
          }
          // Take back this socket's lend (the mount and grant on the old inode) and
          // lend it anew.
          for (const auto& p : exec.undo_socket(journal, name)) out.push_back(p);
          tx.save();
          auto ran = attempt([&] { exec.run_socket(tx, journal.sockets, name, lend_dir); });
          if (ran) continue;
          out.push_back(name + ": " + ran.what());
          for (const auto& p : exec.undo_socket(journal, name)) out.push_back(p);
          tx.save();
        }
      });
}

}  // namespace sockhook
