#include "lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <doctest/doctest.h>

#include "error.hpp"
#include "test_files.hpp"

namespace sockhook {

TEST_CASE("a domain lock serialises one domain and never blocks another") {
  namespace fs = std::filesystem;
  TempDir tmp;
  const auto& dir = tmp.path;
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  {
    DomainLock held(dfd, "aaaa");
    // Another open file description of the same lock: must wait, and give up in time.
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH_AS(DomainLock(dfd, "aaaa", 1), doctest::Contains("busy"), Error);
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= std::chrono::milliseconds(900));
    CHECK(took < std::chrono::seconds(3));
    // A different domain: no wait at all.
    t0 = std::chrono::steady_clock::now();
    DomainLock other(dfd, "bbbb", 1);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(200));
    held.remove_file();
    CHECK_FALSE(fs::exists(dir / "aaaa.lock"));
  }
  // Removed while held: the next taker gets a fresh file.
  DomainLock again(dfd, "aaaa", 1);
  CHECK(fs::exists(dir / "aaaa.lock"));
}

TEST_CASE("a release takes a domain lock over from a holder that keeps it past the timeout") {
  TempDir tmp;
  Fd dfd(::open(tmp.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t holder = ::fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    // A hook of the same domain (the same executable) that holds the lock and never ends.
    DomainLock held(dfd, "cccc");
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);
  // Giving up is still the default: the holder stays.
  CHECK_THROWS_WITH_AS(DomainLock(dfd, "cccc", 1), doctest::Contains("busy"), Error);
  CHECK(::kill(holder, 0) == 0);
  // Taking over: the holder is killed and the lock is ours.
  DomainLock taken(dfd, "cccc", 1, DomainLock::Waiting::kTakeOver);
  int status = 0;
  REQUIRE(::waitpid(holder, &status, 0) == holder);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
}

TEST_CASE("a take-over kills nobody when the lock file names no live sockhook") {
  TempDir tmp;
  Fd dfd(::open(tmp.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DomainLock held(dfd, "dddd");
  // Another open file description in this same process: the record names ourselves.
  CHECK_THROWS_WITH_AS(DomainLock(dfd, "dddd", 1, DomainLock::Waiting::kTakeOver),
                       doctest::Contains("busy"), Error);
}

TEST_CASE("an inode lock serialises one inode, never blocks another, and leaves no file") {
  namespace fs = std::filesystem;
  TempDir tmp;
  const auto& dir = tmp.path;
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  InodeId a{8, 1234}, b{8, 1235};
  {
    InodeLock held(dfd, a);
    CHECK(fs::exists(dir / "inode-8-1234.lock"));
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH_AS(InodeLock(dfd, a, 1), doctest::Contains("busy"), Error);
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(900));
    // Another inode (even on the same device): no wait at all.
    t0 = std::chrono::steady_clock::now();
    InodeLock other(dfd, b, 1);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(200));
  }
  CHECK(fs::is_empty(dir));
  // Taken again after release: a fresh file, and gone again afterwards.
  { InodeLock again(dfd, a, 1); }
  CHECK(fs::is_empty(dir));
}

}  // namespace sockhook
