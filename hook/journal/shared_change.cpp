#include "journal/shared_change.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>

#include "base/error.hpp"
#include "journal/lock.hpp"

namespace sockhook {

RecordedInode reopen_recorded_inode(const InodeChange& e) {
  bool unsure = false;
  auto matches = [&](const Fd& fd) {
    struct stat st {};
    return fd && ::fstat(fd.get(), &st) == 0 && inode_of(st) == e.inode();
  };
  if (!e.via_target.empty()) {
    // The mount target lies in the root-owned lend directory: nobody else can redirect it.
    Fd fd(openat2_fd(AT_FDCWD, e.via_target, O_PATH | O_NOFOLLOW | O_CLOEXEC, RESOLVE_NO_SYMLINKS));
    if (matches(fd)) return {std::move(fd), false, {}};
  }
  // Otherwise resolve as prepare did; the dev/ino comparison decides, not the path. The owner
  // may be renaming things in the directory right now: look a few times before concluding.
  unsigned long long how = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  if (e.base != "/") how |= RESOLVE_NO_XDEV;
  for (int attempt = 0; attempt < 64; ++attempt) {
    // The owner's runtime directory is admitted by a bounded child (R6): a FUSE mount on it
    // must not hold a release, which libvirt waits for.
    Fd base;
    try {
      base = open_socket_base(e.base);
    } catch (const Error& err) {
      return {Fd(), true, err.what()};
    }
    if (!base) return {};
    Fd fd = e.relative.empty()
                ? std::move(base)
                : Fd(openat2_fd(base.get(), e.relative, O_PATH | O_NOFOLLOW | O_CLOEXEC, how));
    if (matches(fd)) return {std::move(fd), false, {}};
    struct stat st {};
    if (fd && ::fstat(fd.get(), &st) == 0 && (S_ISSOCK(st.st_mode) || S_ISDIR(st.st_mode))) {
      // Another socket (or directory) under that name: the server restarted, and our change
      // went with the old inode.
      return {};
    }
    // Nothing there, a symlink, a FIFO...: perhaps the owner is renaming things. The inode may
    // live on, so the caller keeps its entry for a later release; when the runtime directory
    // itself goes (logout), the base check above drops it.
    unsure = true;
  }
  return {Fd(), unsure, {}};
}

std::vector<Journal> other_journals(const JournalStore& store, const std::string& own_uuid) {
  std::vector<Journal> out;
  for (const auto& uuid : store.uuids()) {
    if (uuid == own_uuid) continue;
    try {
      if (auto other = store.load(uuid)) out.push_back(std::move(*other));
    } catch (const Error&) {
    }
  }
  return out;
}

UndoProblem undo_shared_change(const InodeChange& e, const Undoing& u, const std::string& what,
                               const std::function<bool()>& shared,
                               const std::function<void(const Fd&)>& restore) {
  const auto& uuid = u.uuid;
  auto [fd, unsure, blocked] = reopen_recorded_inode(e);
  if (!blocked.empty())
    return what + ": " + e.inode_text() + " cannot be looked at: " + blocked +
           "; kept for the next try ('sockhook cleanup " + uuid + " --forget' drops it)";
  // Someone swapped the name for something else: keep the entry, a later release tries again.
  // Say what stays behind and how to end the journal anyway (issue 22, item 8): the owner can
  // keep the inode out of reach for ever, by moving it.
  if (!fd && unsure)
    return what + ": " + e.inode_text() +
           " is no longer at that name (moved, or the name holds something else now), and may "
           "still carry the change; kept for the next try ('sockhook cleanup " +
           uuid + " --forget' drops it)";
  // The inode is gone or replaced (the server restarted): our change went with it.
  if (!fd) return std::nullopt;
  try {
    InodeLock lock(u.store.dir(), e.inode());
    if (!shared()) restore(fd);
    u.forget();
    return std::nullopt;
  } catch (const Error& err) {
    return err.with_context(what).what();
  }
}

}  // namespace sockhook
