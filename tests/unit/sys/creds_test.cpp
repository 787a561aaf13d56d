#include "sys/creds.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include <doctest/doctest.h>

#include "base/error.hpp"

namespace sockhook {
namespace {

// Dropping privileges needs root; any unprivileged uid will do (the child only looks at
// itself), so the tests use 65534 without depending on an account.
constexpr uid_t kUid = 65534;
constexpr gid_t kGid = 65534;

bool skip_without_root() {
  if (::geteuid() == 0) return false;
  MESSAGE("skipped: run_as_user drops root (run as root)");
  return true;
}

}  // namespace

TEST_CASE("a child run as another user keeps only /dev/null and its pipe") {
  if (skip_without_root()) return;
  // Descriptors of ours, as the hook has (a lock, a directory): none may reach the child.
  Fd dir(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Fd plain(::open("/dev/zero", O_RDONLY));  // even without O_CLOEXEC
  REQUIRE(dir);
  REQUIRE(plain);
  auto child = run_as_user(
      kUid, kGid,
      [](int out) {
        std::string list;
        DIR* d = ::opendir("/proc/self/fd");
        if (!d) return 1;
        int own = ::dirfd(d);
        while (auto* e = ::readdir(d)) {
          std::string name = e->d_name;
          if (name == "." || name == ".." || name == std::to_string(own)) continue;
          char target[256] = {};
          auto path = "/proc/self/fd/" + name;
          auto n = ::readlink(path.c_str(), target, sizeof target - 1);
          std::string t(target, n > 0 ? static_cast<std::size_t>(n) : 0);
          if (t.starts_with("pipe:")) t = "pipe";
          list += name + "=" + t + ";";
        }
        ::closedir(d);
        return ::write(out, list.data(), list.size()) > 0 ? 0 : 1;
      },
      4096, 5000);
  CHECK(child.status == 0);
  // readdir order is the fd order on procfs.
  CHECK(child.output == "0=/dev/null;1=/dev/null;2=/dev/null;3=pipe;");
}

TEST_CASE("a child that does not finish in time is killed, and the caller is told") {
  if (skip_without_root()) return;
  CHECK_THROWS_WITH_AS(run_as_user(
                           kUid, kGid,
                           [](int) {
                             for (;;) ::pause();
                             return 0;
                           },
                           16, 200),
                       "the process running as uid 65534 did not finish within 200 ms and "
                       "was killed",
                       Error);
}

TEST_CASE("a child that closes its pipe but does not exit is killed, not waited for") {
  if (skip_without_root()) return;
  // The timeout is far away: only the bounded reap after EOF can end this.
  auto child = run_as_user(
      kUid, kGid,
      [](int out) {
        ::close(out);
        for (;;) ::pause();
        return 0;
      },
      16, 600000);
  CHECK(child.status == 128 + SIGKILL);
  CHECK(child.output.empty());
}

}  // namespace sockhook
