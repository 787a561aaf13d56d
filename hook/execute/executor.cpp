#include "execute/executor.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <functional>
#include <memory>

#include "base/error.hpp"
#include "base/log.hpp"
#include "host/qemu_identity.hpp"
#include "journal/journal.hpp"
#include "journal/lock.hpp"
#include "journal/transaction.hpp"
#include "lend/lends.hpp"
#include "sys/acl.hpp"
#include "sys/file.hpp"
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
    UndoProblem problem;
    try {
      problem = undo_effect(e, Undoing{store, journal.uuid, forget});
    } catch (const std::exception& ex) {
      problem = ex.what();
    }
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

/// Removes leftovers of a journal write that was killed halfway (".<uuid>.xml.tmpPID").
void remove_temp_files(const JournalStore& store, const std::string& uuid) {
  auto prefix = "." + uuid + ".xml.tmp";
  for (const auto& name : list_directory(store.dir()))
    // Safe: only root writes the state directory; these are our own interrupted temp files.
    if (name.starts_with(prefix)) ::unlinkat(store.dir().get(), name.c_str(), 0);
}

/// Everything of one domain while its lock is held.
class DomainExecutor {
 public:
  DomainExecutor(const ExecContext& ctx, const JournalStore& store) : ctx_(ctx), store_(store) {}

  /// Undoes and deletes the journal of `uuid`. Never throws.
  std::vector<std::string> release(const std::string& uuid) {
    std::vector<std::string> problems;
    try {
      remove_temp_files(store_, uuid);
      auto [journal, unreadable] = load_or_quarantine(uuid);
      if (unreadable) problems.push_back(*unreadable);
      if (!journal) return problems;
      auto more = undo_entries(store_, *journal, undo_order(journal->entries));
      problems.insert(problems.end(), more.begin(), more.end());
      if (journal->entries.empty()) {
        store_.remove(uuid);
      } else {
        store_.save(*journal);  // what could not be undone, for the next try
      }
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
    for (const auto& p : problems) log_warning("release " + uuid + ": " + p);
    return problems;
  }

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
    Fd lend_dir;
    try {
      for (const auto& step : plan.domain_steps)
        if (const auto* dir = std::get_if<MakeLendDir>(&step)) lend_dir = make_dir(tx, *dir);
    } catch (const Error& e) {
      abort_all(journal);
      throw;
    }
    for (const auto& s : plan.sockets) {
      auto mark = journal.entries.size();
      try {
        run_socket(tx, journal.sockets, s.request.name, lend_dir);
      } catch (const Error& e) {
        auto line = s.request.name + ": " + e.what();
        if (s.request.required) {
          abort_all(journal);
          throw Error(line, e.err());
        }
        // An optional socket: take back its own changes and go on without it.
        for (const auto& p : undo_socket(journal, s.request.name, mark)) log_warning(p);
        std::erase_if(journal.sockets,
                      [&](const JournalSocket& js) { return js.name == s.request.name; });
        tx.save();
        log_warning(plan.domain + ": " + line + " (optional socket skipped)");
      }
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

  /// The journal of `uuid` (nullopt if there is none), or why it could not be read.
  struct Loaded {
    std::optional<Journal> journal;
    std::optional<std::string> unreadable;  ///< the problem, when the journal was moved aside
  };

  Loaded load_or_quarantine(const std::string& uuid) {
    try {
      return {store_.load(uuid), std::nullopt};
    } catch (const Error& e) {
      // A journal nobody can read cannot guide an undo. Keep it for a person to look at,
      // under a name no later run mistakes for a journal.
      auto name = uuid + ".xml";
      auto aside = uuid + ".xml.corrupt";
      ::renameat(store_.dir().get(), name.c_str(), store_.dir().get(), aside.c_str());
      return {std::nullopt, std::string(e.what()) + " (moved aside to " + aside +
                                "; check what it lent by hand)"};
    }
  }

 private:
  Fd make_dir(Transaction& tx, const MakeLendDir& step) {
    try {
      tx.record(DirMade{{"", step.path}});
      Fd root = ensure_root_dir(dir_name(step.path), 0711);
      return make_lend_dir(root, base_name(step.path), step.qemu_uid);
    } catch (const Error& e) {
      throw e.with_context("cannot create lend directory " + step.path);
    }
  }

  /// Undoes everything and deletes the journal: prepare failed.
  void abort_all(Journal& journal) {
    auto problems = undo_entries(store_, journal, undo_order(journal.entries));
    for (const auto& p : problems) log_warning(journal.domain + ": rollback: " + p);
    try {
      if (journal.entries.empty()) {
        store_.remove(journal.uuid);
      } else {
        store_.save(journal);
      }
    } catch (const Error& e) {
      log_warning(journal.domain + ": rollback: " + e.what());
    }
  }

  const ExecContext& ctx_;
  const JournalStore& store_;
};

/// The real path of this executable, for proxies: /proc/self/exe resolved now.
ExecContext with_real_exe(const ExecContext& ctx) {
  ExecContext out = ctx;
  if (out.self_exe == "/proc/self/exe")
    if (auto exe = self_exe_path()) out.self_exe = *exe;
  return out;
}

/// A domain's executor with its journal store open and the domain's lock held.
struct LockedDomain {
  ExecContext real;
  JournalStore store;
  DomainLock lock;
  DomainExecutor exec;
  LockedDomain(const ExecContext& ctx, JournalStore open_store, const std::string& uuid,
               DomainLock::Waiting waiting = DomainLock::Waiting::kGiveUp, int timeout_seconds = 30)
      : real(with_real_exe(ctx)),
        store(std::move(open_store)),
        lock(store.dir(), uuid, timeout_seconds, waiting),
        exec(real, store) {}

  /// Takes back what the journal records (problems logged after `why`), then lends `plan`;
  /// entries that could not be undone stay in the new journal for the next release.
  void lend_anew(const Plan& plan, const std::string& why) {
    for (const auto& p : exec.release(plan.uuid)) log_warning(plan.domain + ": " + why + p);
    std::vector<Effect> leftovers;
    if (auto old = store.load(plan.uuid)) leftovers = std::move(old->entries);
    exec.prepare(plan, std::move(leftovers));
  }
};

/// The domain locked in the existing journal store, or nullptr when there is no store (then
/// nothing was ever lent).
std::unique_ptr<LockedDomain> lock_existing(
    const ExecContext& ctx, const std::string& uuid,
    DomainLock::Waiting waiting = DomainLock::Waiting::kGiveUp, int timeout_seconds = 30) {
  JournalStore store(ctx.paths, false);
  if (!store.exists()) return nullptr;
  return std::make_unique<LockedDomain>(ctx, std::move(store), uuid, waiting, timeout_seconds);
}

}  // namespace

void execute_prepare(const Plan& plan, const ExecContext& ctx) {
  LockedDomain d(ctx, JournalStore(ctx.paths, true), plan.uuid);
  auto& store = d.store;
  auto& lock = d.lock;
  try {
    // A previous prepare without release (a crash, a killed hook): take it all back first.
    d.lend_anew(plan, "earlier lend: ");
  } catch (const Error&) {
    // Rolled back: leave no lock file behind either (R2's "no file remains").
    if (!store.has(plan.uuid)) lock.remove_file();
    throw;
  }
  if (!store.has(plan.uuid)) lock.remove_file();
}

void execute_start(const Plan& plan, const ExecContext& ctx) {
  LockedDomain d(ctx, JournalStore(ctx.paths, true), plan.uuid);
  auto [journal, unreadable] = d.exec.load_or_quarantine(plan.uuid);
  if (!journal) {
    if (unreadable) log_warning(plan.domain + ": " + *unreadable);
    return;  // nothing was lent (or nothing we can trust): nothing to verify
  }
  if (journal->qemu_uid == plan.qemu.uid && journal->qemu_gid == plan.qemu.gid) return;
  // QEMU runs as someone else than prepare assumed: lend again, to the right identity.
  log_info(plan.domain + ": QEMU runs as " + std::to_string(plan.qemu.uid) + ":" +
           std::to_string(plan.qemu.gid) + ", not " + std::to_string(journal->qemu_uid) + ":" +
           std::to_string(journal->qemu_gid) + " as prepare assumed; lending again");
  d.lend_anew(plan, "");
}

std::vector<std::string> execute_release(const std::string& uuid, const ExecContext& ctx) {
  try {
    // A release must not give up and leave the lend behind: see DomainLock.
    auto d = lock_existing(ctx, uuid, DomainLock::Waiting::kTakeOver);
    if (!d) return {};
    auto problems = d->exec.release(uuid);
    if (problems.empty()) d->lock.remove_file();
    return problems;
  } catch (const std::exception& e) {
    log_warning("release " + uuid + ": " + e.what());
    return {e.what()};
  }
}

/// How long cleanup --stale waits for a domain's lock before it leaves the domain alone.
constexpr int kStaleLockWaitSeconds = 1;

std::optional<std::vector<std::string>> execute_release_if_stale(
    const std::string& uuid, const ExecContext& ctx, const std::function<bool()>& stale,
    bool forget, std::vector<std::string>& forgotten) {
  std::unique_ptr<LockedDomain> d;
  try {
    // Waited for a moment only, and never taken over: a hook that holds the lock is starting or
    // stopping the domain, which is then in use (R4). The moment is for a hook killed just now:
    // the kernel ends its children (fork_child: they die with it, and hold no lock past their
    // first instructions anyway) only after it has reported the hook's death. The lock is taken
    // once and held from the check to the last undo, so no prepare or start of this domain can
    // run in between (it waits for us and then lends anew).
    d = lock_existing(ctx, uuid, DomainLock::Waiting::kGiveUp, kStaleLockWaitSeconds);
  } catch (const Error&) {
    return std::nullopt;
  }
  if (!d) return std::vector<std::string>{};
  // Decided again under the lock: a start that finished while we waited has a QEMU now.
  if (!stale()) return std::nullopt;
  std::vector<std::string> problems;
  try {
    problems = d->exec.release(uuid);
    if (problems.empty()) d->lock.remove_file();
  } catch (const std::exception& e) {
    log_warning("release " + uuid + ": " + e.what());
    return std::vector<std::string>{e.what()};
  }
  if (problems.empty() || !forget || !d->store.has(uuid)) return problems;
  // The person asked to end it: say why and what may stay, then drop the journal, still
  // under the same lock.
  for (const auto& p : problems) forgotten.push_back(uuid + ": not undone: " + p);
  try {
    auto [journal, unreadable] = d->exec.load_or_quarantine(uuid);
    std::vector<std::string> left;
    if (unreadable) left.push_back(*unreadable);
    if (journal)
      for (const auto& e : journal->entries) left.push_back(left_behind(e));
    // Safe: as in execute_forget, the domain's own journal, whose entries were just reported.
    d->store.remove(uuid);
    d->lock.remove_file();
    for (const auto& l : left) {
      log_warning("cleanup --forget " + uuid + ": dropped, may remain: " + l);
      forgotten.push_back(uuid + ": dropped from the journal, may remain: " + l);
    }
  } catch (const std::exception& e) {
    forgotten.push_back(uuid + ": cannot drop the journal: " + e.what());
  }
  return std::vector<std::string>{};
}

std::vector<std::string> execute_forget(const std::string& uuid, const ExecContext& ctx) {
  std::vector<std::string> left;
  try {
    auto d = lock_existing(ctx, uuid, DomainLock::Waiting::kTakeOver);
    if (!d) return {};
    auto [journal, unreadable] = d->exec.load_or_quarantine(uuid);
    if (unreadable) left.push_back(*unreadable);
    if (journal)
      for (const auto& e : journal->entries) left.push_back(left_behind(e));
    // Safe: only root writes the state directory; this is the domain's own journal, whose
    // entries were just reported. What they changed is not touched.
    d->store.remove(uuid);
    d->lock.remove_file();
  } catch (const std::exception& e) {
    left.push_back(std::string("cannot drop the journal: ") + e.what());
  }
  for (const auto& l : left)
    log_warning("cleanup --forget " + uuid + ": dropped, may remain: " + l);
  return left;
}

namespace {

/// Runs `body(exec, tx, journal, ctx, problems)` on the journal of `uuid` under the domain's
/// lock; does nothing if there is none. Collects problems instead of throwing.
template <class Body>
std::vector<std::string> with_journal(const std::string& uuid, const ExecContext& ctx, Body body) {
  std::vector<std::string> problems;
  try {
    auto d = lock_existing(ctx, uuid);
    if (!d) return {};
    auto [journal, unreadable] = d->exec.load_or_quarantine(uuid);
    if (unreadable) problems.push_back(*unreadable);
    if (!journal) return problems;
    Transaction tx(d->store, *journal);
    body(d->exec, tx, *journal, d->real, problems);
  } catch (const std::exception& e) {
    problems.push_back(e.what());
  }
  return problems;
}

}  // namespace

std::optional<QemuIdentity> configured_qemu_identity() {
  try {
    return resolve_qemu_identity(std::nullopt, load_qemu_conf());
  } catch (const Error&) {
    return std::nullopt;  // none resolves: only an identity the policy names may receive
  }
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
      [&](DomainExecutor&, Transaction& tx, Journal& journal, const ExecContext& real,
          std::vector<std::string>& out) {
        for (std::size_t i = 0; i < journal.entries.size(); ++i) {
          const auto* served = std::get_if<ProxyStarted>(&journal.entries[i]);
          if (!served || proxy_alive(*served)) continue;
          const auto e = *served;  // a copy: the restart rewrites the entry
          // The process that serves the lend: a proxy, or a context's holder.
          const auto* s = journal.find_socket(e.socket);
          const char* what = s ? served_by(s->steps, e.path) : nullptr;
          if (!what) continue;
          // A new proxy or context is a new lend: only with the policy's consent.
          if (auto refused = relend_refusal(policy, journal, *s, configured)) {
            log_warning(journal.domain + ": " + *refused);
            continue;
          }
          auto label = journal.domain + "/" + e.socket + " " + journal.uuid;
          auto problem = restart_served(tx, i, s->steps, real, label, journal.qemu_gid);
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
      [&](DomainExecutor& exec, Transaction& tx, Journal& journal, const ExecContext&,
          std::vector<std::string>& out) {
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
          try {
            exec.run_socket(tx, journal.sockets, name, lend_dir);
          } catch (const Error& e) {
            out.push_back(name + ": " + e.what());
            for (const auto& p : exec.undo_socket(journal, name)) out.push_back(p);
            tx.save();
          }
        }
      });
}

}  // namespace sockhook
