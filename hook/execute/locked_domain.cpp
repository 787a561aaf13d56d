#include "execute/locked_domain.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "base/error.hpp"
#include "sys/file.hpp"

namespace sockhook {
namespace {

/// The real path of this executable, for proxies: /proc/self/exe resolved now.
ExecContext with_real_exe(const ExecContext& ctx) {
  ExecContext out = ctx;
  if (out.self_exe == "/proc/self/exe")
    if (auto exe = self_exe_path()) out.self_exe = *exe;
  return out;
}

/// Removes leftovers of a journal write that was killed halfway (".<uuid>.xml.tmpPID").
void remove_temp_files(const JournalStore& store, const std::string& uuid) {
  auto prefix = "." + uuid + ".xml.tmp";
  for (const auto& name : list_directory(store.dir()))
    // Safe: only root writes the state directory; these are our own interrupted temp files.
    if (name.starts_with(prefix)) ::unlinkat(store.dir().get(), name.c_str(), 0);
}

}  // namespace

LockedDomain::LockedDomain(const ExecContext& ctx, JournalStore open_store,
                           const std::string& domain_uuid, DomainLock::Waiting waiting,
                           int timeout_seconds)
    : real(with_real_exe(ctx)),
      store(std::move(open_store)),
      uuid(domain_uuid),
      lock(store.dir(), uuid, timeout_seconds, waiting) {
  // Under the lock nobody else writes this domain's journal: a temp file is a killed write's.
  remove_temp_files(store, uuid);
  auto loaded = attempt([&] { return store.load(uuid); });
  if (loaded)
    journal = std::move(*loaded.value);
  else
    unreadable = loaded.what();
}

LockedDomain::~LockedDomain() {
  // R2: whatever ran (lent, rolled back, released, quarantined), no journal, no lock file.
  if (!store.has(uuid)) lock.remove_file();
}

std::unique_ptr<LockedDomain> LockedDomain::existing(const ExecContext& ctx,
                                                     const std::string& uuid,
                                                     DomainLock::Waiting waiting,
                                                     int timeout_seconds) {
  JournalStore store(ctx.paths, false);
  if (!store.exists()) return nullptr;
  return std::make_unique<LockedDomain>(ctx, std::move(store), uuid, waiting, timeout_seconds);
}

void LockedDomain::quarantine() {
  if (!unreadable || moved_aside_) return;
  auto name = uuid + ".xml";
  auto aside = uuid + ".xml.corrupt";
  // Safe: beneath the root-only state directory's fd; the names are a checked UUID's.
  ::renameat(store.dir().get(), name.c_str(), store.dir().get(), aside.c_str());
  *unreadable += " (moved aside to " + aside + "; check what it lent by hand)";
  moved_aside_ = true;
}

void LockedDomain::drop() {
  quarantine();
  // Safe: only root writes the state directory; this is the domain's own journal, whose
  // entries the caller has reported. What they changed is not touched.
  store.remove(uuid);
  lock.remove_file();
  journal.reset();
}

}  // namespace sockhook
