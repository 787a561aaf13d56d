#include "commands/recorded_lends.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <string_view>

#include "base/error.hpp"
#include "execute/executor.hpp"
#include "host/proc.hpp"
#include "host/virt.hpp"
#include "journal/journal.hpp"
#include "journal/lock.hpp"
#include "lend/lends.hpp"
#include "model/domain_xml.hpp"
#include "sys/file.hpp"
#include "sys/resolve.hpp"

namespace sockhook {
namespace {

LendStatus status_of(const Journal& j, const JournalSocket& s) {
  auto h = health_of(j, s);
  return {j.domain, j.uuid,      s.name,      std::string(to_string(s.method)),
          s.owner,  s.source,    s.target,    h.health,
          h.why,    h.proxy_pid, h.holder_pid};
}

/// The journal of `uuid`, or nullopt if it has none or it cannot be read.
std::optional<Journal> load_or_none(const JournalStore& store, const std::string& uuid) {
  return value_or_none([&] { return store.load(uuid); }).value_or(std::nullopt);
}

/// The journals' UUIDs whose domain name or UUID is `domain`.
std::vector<std::string> matching(const JournalStore& store, const std::string& domain) {
  std::vector<std::string> out;
  for (const auto& uuid : store.uuids()) {
    if (uuid == domain) {
      out.push_back(uuid);
      continue;
    }
    if (auto j = load_or_none(store, uuid); j && j->domain == domain) out.push_back(uuid);
  }
  // A UUID with no journal may still have a lock file from a hook killed before its first
  // journal write: releasing it removes that.
  if (out.empty() && is_valid_uuid(domain)) out.push_back(domain);
  if (out.empty()) throw Error(domain + ": no lends are recorded for this domain");
  return out;
}

/// UUIDs with a lock file but no journal: hooks killed before their first journal write.
std::vector<std::string> orphan_locks(const JournalStore& store) {
  std::vector<std::string> out;
  if (!store.exists()) return out;
  for (const auto& name : list_directory(store.dir())) {
    if (!name.ends_with(".lock")) continue;
    auto uuid = name.substr(0, name.size() - 5);
    if (is_valid_uuid(uuid) && !store.has(uuid)) out.push_back(uuid);
  }
  return out;
}

/// How long cleanup --stale waits for libvirt to say whether a domain is being started.
constexpr int kLibvirtAnswerMs = 3000;

/// Why `activity` keeps a domain whose QEMU does not run from being stale ("" if it does not).
std::string starting_because(DomainActivity activity) {
  switch (activity) {
    case DomainActivity::kNone:
    case DomainActivity::kNoLibvirt:
      return "";
    case DomainActivity::kActive:
      return "libvirt has it active and its QEMU does not run yet";
    case DomainActivity::kHeld:
      return "libvirt holds it, as it does from before the prepare hook until QEMU runs";
    case DomainActivity::kUnreachable:
      return "libvirt's socket is there, but the connection to it failed: cannot tell";
    case DomainActivity::kSilent:
      return "libvirt did not say within " + std::to_string(kLibvirtAnswerMs / 1000) +
             " s whether it is";
  }
  return "";
}

}  // namespace

std::vector<LendStatus> lend_status(const Paths& paths, std::optional<uid_t> owner) {
  std::vector<LendStatus> out;
  JournalStore store(paths, false);
  for (const auto& uuid : store.uuids()) {
    std::optional<Journal> j;
    try {
      j = store.load(uuid);
    } catch (const Error& e) {
      if (!owner) out.push_back({"?", uuid, "?", "?", "?", "?", "?", "broken", e.what(), 0});
      continue;
    }
    if (!j) continue;
    // An owner's status (run as root for them by pkexec) looks at their sockets only: no
    // path or process of another owner's is even examined for them.
    for (const auto& s : j->sockets)
      if (!owner || s.owner_uid == *owner) out.push_back(status_of(*j, s));
  }
  return out;
}

LendsDone cleanup_lends(const ExecContext& ctx, const std::string& domain, bool stale,
                        bool forget) {
  LendsDone out;
  JournalStore store(ctx.paths, false);
  std::vector<std::string> uuids;
  std::map<std::string, std::optional<JournalVersion>> seen;
  if (stale) {
    std::vector<std::string> candidates;
    for (const auto& uuid : store.uuids())
      if (!qemu_running(uuid)) candidates.push_back(uuid);
    for (const auto& uuid : orphan_locks(store)) candidates.push_back(uuid);
    // libvirt writes its status file only once QEMU runs: between the prepare hook and QEMU's
    // start a domain's QEMU does not run, yet its lends are about to be used. Only libvirt knows,
    // so it is asked, bounded, before the domain's lock is taken: a start that holds libvirt
    // while a hook waits for our lock must not wait on us asking libvirt. What the journal is
    // now is noted first, and checked again under the lock: a prepare that came after libvirt
    // answered has rewritten it.
    for (const auto& uuid : candidates) seen[uuid] = store.version(uuid);
    auto activity = domain_activity(candidates, kLibvirtAnswerMs);
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      const auto& uuid = candidates[i];
      auto why = starting_because(activity[i]);
      if (why.empty()) {
        uuids.push_back(uuid);
        continue;
      }
      auto j = load_or_none(store, uuid);
      const std::string& name = j ? j->domain : uuid;
      const bool unsure = activity[i] == DomainActivity::kUnreachable;
      out.starting.push_back(uuid + ": left alone: " + name +
                             (unsure ? " may be starting (" : " is starting (") + why + ")");
    }
  } else {
    uuids = matching(store, domain);
  }
  for (const auto& uuid : uuids) {
    // Say what was really done: a UUID without a journal had nothing undone, and one whose
    // journal was moved aside as corrupt (now or by an earlier release) left its lend behind.
    bool recorded = store.has(uuid);
    std::vector<std::string> problems;
    if (stale) {
      // One lock from the check to the last undo. A probe of the lock let go before the
      // release took it again: a start that came in between was waited for 30 s, killed, and
      // its lends undone, or ran to the end and had them undone under its running QEMU.
      auto forgotten = out.forgotten.size();
      auto done = execute_release_if_stale(
          uuid, ctx, [&] { return !qemu_running(uuid) && store.version(uuid) == seen[uuid]; },
          forget, out.forgotten);
      if (!done) {
        out.busy.push_back(uuid);
        continue;
      }
      if (out.forgotten.size() != forgotten) {  // dropped with --forget, as said
        out.done.push_back(uuid);
        continue;
      }
      problems = std::move(*done);
    } else {
      problems = execute_release(uuid, ctx);
    }
    if (!recorded && store.exists() &&
        ::faccessat(store.dir().get(), (uuid + ".xml.corrupt").c_str(), F_OK,
                    AT_SYMLINK_NOFOLLOW) == 0)
      problems.push_back("its journal is corrupt (" + uuid +
                         ".xml.corrupt): nothing was undone; check what it lent by hand");
    if (!problems.empty() && forget && store.has(uuid)) {
      // The person asked to end it: say why and what may stay, then drop the journal.
      for (const auto& p : problems) out.forgotten.push_back(uuid + ": not undone: " + p);
      for (const auto& left : execute_forget(uuid, ctx))
        out.forgotten.push_back(uuid + ": dropped from the journal, may remain: " + left);
      out.done.push_back(uuid);
      continue;
    }
    for (const auto& p : problems) out.problems.push_back(uuid + ": " + p);
    if (!problems.empty()) continue;
    (recorded ? out.done : out.nothing).push_back(uuid);
  }
  return out;
}

LendsDone refresh_lends(const ExecContext& ctx, const std::string& domain, const Policy& policy,
                        DeadProxies dead) {
  JournalStore store(ctx.paths, false);
  LendsDone out;
  for (const auto& uuid : matching(store, domain)) {
    // This domain's journal only: reconnect runs once per domain, and each socket's health
    // resolves its source in a child of its own.
    std::vector<std::string> names, proxies;
    if (auto j = load_or_none(store, uuid))
      for (const auto& s : j->sockets) {
        if (health_of(*j, s).health == "ok") continue;
        if (s.method == Method::kBind) names.push_back(s.name);
        // A dead context holder is restarted as a dead proxy is (execute_reconnect).
        if (traits(s.method).served) proxies.push_back(s.name);
      }
    if (!proxies.empty() && dead == DeadProxies::kRestart) {
      // The same restart as reconnect's, under the same policy check (S5).
      auto problems = execute_reconnect(uuid, ctx, policy);
      out.problems.insert(out.problems.end(), problems.begin(), problems.end());
      if (auto j = load_or_none(store, uuid))
        for (const auto& s : j->sockets)
          if (std::find(proxies.begin(), proxies.end(), s.name) != proxies.end() &&
              health_of(*j, s).health == "ok")
            out.done.push_back(s.name);
    }
    if (names.empty()) continue;
    auto problems = execute_refresh(uuid, ctx, names, policy);
    for (const auto& p : problems) out.problems.push_back(p);
    // Only what was lent again counts as refreshed; the problems say what was not.
    if (problems.empty()) out.done.insert(out.done.end(), names.begin(), names.end());
  }
  return out;
}

}  // namespace sockhook
