#include "journal/lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

namespace fs = std::filesystem;

/// A private state directory, with the fd the locks take it by.
struct StateDir : TempDir {
  Fd fd{::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};

  /// Whether someone holds the flock on the file `name` now: tried, without waiting, from an
  /// open file description of our own (flocks of two descriptions conflict even in one process).
  bool held(const std::string& name) const {
    Fd probe(::open((path / name).c_str(), O_RDONLY | O_CLOEXEC));
    if (!probe) return false;
    if (::flock(probe.get(), LOCK_EX | LOCK_NB) == 0) return false;
    return errno == EWOULDBLOCK;
  }
};

/// Waits until `pid` is blocked in flock on the inode of `lock` (the kernel lists it as a
/// waiter in /proc/locks), or has ended. True if it is blocked. Bounded by the child's own lock
/// timeout: it either waits on the lock, or gives up and exits.
bool blocked_on(pid_t pid, const fs::path& lock) {
  struct stat st {};
  REQUIRE(::stat(lock.c_str(), &st) == 0);
  const auto inode = ":" + std::to_string(st.st_ino) + " ";
  const auto waiter = " " + std::to_string(pid) + " ";
  for (;;) {
    std::ifstream locks("/proc/locks");
    for (std::string line; std::getline(locks, line);)
      if (line.find("-> FLOCK") != std::string::npos && line.find(waiter) != std::string::npos &&
          line.find(inode) != std::string::npos)
        return true;
    siginfo_t info{};
    // WNOWAIT: look without reaping, so that the caller still gets the exit status.
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        info.si_pid == pid)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

/// The exit code of the child `pid` (-1 if a signal ended it).
int exit_code(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// A taker of a held lock (with a timeout far beyond the test's own) waits for it, and has it
/// as soon as the holder lets go. `take` runs in a child forked before `hold` takes the lock, so
/// that the child has no copy of the holder's descriptor (a copy would keep the flock held). The
/// child exits 0 once `take` returned, 1 if it threw Error.
void check_taken_on_release(const fs::path& lock, const std::function<void()>& hold,
                            const std::function<void()>& release,
                            const std::function<void()>& take) {
  int go[2];
  REQUIRE(::pipe2(go, O_CLOEXEC) == 0);
  pid_t taker = ::fork();
  REQUIRE(taker >= 0);
  if (taker == 0) {
    ::close(go[1]);
    char c = 0;
    if (::read(go[0], &c, 1) != 1) ::_exit(2);  // the parent ended before it held the lock
    int rc = 1;
    try {
      take();
      rc = 0;
    } catch (const Error&) {
    }
    ::_exit(rc);
  }
  ::close(go[0]);
  hold();
  REQUIRE(::write(go[1], "x", 1) == 1);
  ::close(go[1]);
  CHECK(blocked_on(taker, lock));
  release();
  CHECK(exit_code(taker) == 0);
}

constexpr int kLongerThanTheTest = 3600;

}  // namespace

TEST_CASE("a domain lock serialises one domain and never blocks another") {
  StateDir state;
  {
    DomainLock held(state.fd, "aaaa");
    // Another open file description of the same lock: must wait, and give up in time.
    CHECK_THROWS_WITH_AS(DomainLock(state.fd, "aaaa", 1),
                         doctest::Contains("busy with this domain (waited 1 s for aaaa.lock)"),
                         Error);
    CHECK(state.held("aaaa.lock"));
    // A different domain: no wait at all (with no time to wait, only a free lock is taken).
    DomainLock other(state.fd, "bbbb", 0);
    CHECK(state.held("bbbb.lock"));
    CHECK(state.held("aaaa.lock"));
    held.remove_file();
    CHECK_FALSE(fs::exists(state.path / "aaaa.lock"));
  }
  // Removed while held: the next taker gets a fresh file.
  DomainLock again(state.fd, "aaaa", 1);
  CHECK(fs::exists(state.path / "aaaa.lock"));
}

TEST_CASE("a domain lock's waiter takes it as soon as the holder lets go") {
  StateDir state;
  std::optional<DomainLock> held;
  check_taken_on_release(
      state.path / "eeee.lock", [&] { held.emplace(state.fd, "eeee"); }, [&] { held.reset(); },
      [&] { DomainLock(state.fd, "eeee", kLongerThanTheTest); });
}

TEST_CASE("a release takes a domain lock over from a holder that keeps it past the timeout") {
  StateDir state;
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t holder = ::fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    // A hook of the same domain (the same executable) that holds the lock and never ends.
    DomainLock held(state.fd, "cccc");
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);
  // Giving up is still the default: the holder stays.
  CHECK_THROWS_WITH_AS(DomainLock(state.fd, "cccc", 1), doctest::Contains("busy"), Error);
  CHECK(::kill(holder, 0) == 0);
  // Taking over: the holder is killed and the lock is ours.
  DomainLock taken(state.fd, "cccc", 1, DomainLock::Waiting::kTakeOver);
  int status = 0;
  REQUIRE(::waitpid(holder, &status, 0) == holder);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
}

TEST_CASE("a take-over kills nobody when the lock file names no live sockhook") {
  StateDir state;
  DomainLock held(state.fd, "dddd");
  // Another open file description in this same process: the record names ourselves.
  CHECK_THROWS_WITH_AS(DomainLock(state.fd, "dddd", 1, DomainLock::Waiting::kTakeOver),
                       doctest::Contains("busy"), Error);
}

TEST_CASE("an inode lock serialises one inode, never blocks another, and leaves no file") {
  StateDir state;
  InodeId a{8, 1234}, b{8, 1235};
  {
    InodeLock held(state.fd, a);
    CHECK(fs::exists(state.path / "inode-8-1234.lock"));
    CHECK_THROWS_WITH_AS(
        InodeLock(state.fd, a, 1),
        doctest::Contains("busy with this inode's ACL (waited 1 s for inode-8-1234.lock)"), Error);
    CHECK(state.held("inode-8-1234.lock"));
    // Another inode (even on the same device): no wait at all.
    InodeLock other(state.fd, b, 0);
    CHECK(state.held("inode-8-1235.lock"));
  }
  CHECK(fs::is_empty(state.path));
  // Taken again after release: a fresh file, and gone again afterwards.
  { InodeLock again(state.fd, a, 1); }
  CHECK(fs::is_empty(state.path));
}

TEST_CASE("an inode lock's waiter takes it when the holder lets go and removes the file") {
  // The waiter then holds the removed file's inode; it must notice and lock a new file.
  StateDir state;
  InodeId a{8, 4321};
  std::optional<InodeLock> held;
  check_taken_on_release(
      state.path / "inode-8-4321.lock", [&] { held.emplace(state.fd, a); }, [&] { held.reset(); },
      [&] { InodeLock(state.fd, a, kLongerThanTheTest); });
  CHECK(fs::is_empty(state.path));
}

}  // namespace sockhook
