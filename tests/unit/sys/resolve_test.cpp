#include "sys/resolve.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

namespace fs = std::filesystem;

/// A runtime directory owned by whoever runs the test, with a real listening socket.
struct Runtime {
  TempDir tmp;
  const fs::path& dir = tmp.path;
  uid_t owner = ::geteuid();

  Fd make_socket(const std::string& rel) const { return bound_socket(dir / rel); }
  SourceSpec spec(const std::string& rel, int wait = 0) const {
    return SourceSpec{dir.string(), rel, owner, wait, std::nullopt};
  }
};

/// How resolving `spec` failed (an empty message and 0 if it did not).
struct Failure {
  std::string what;
  int err = 0;
};

Failure failure(const SourceSpec& spec) {
  try {
    resolve_source(spec);
  } catch (const Error& e) {
    return {e.what(), e.err()};
  }
  return {};
}

std::string why(const SourceSpec& spec) { return failure(spec).what; }

/// Whether this process has an inotify watch on the inode of `dir` (the kernel lists every
/// watch in the fdinfo of its inotify descriptor: "inotify wd:1 ino:<hex> ...").
bool watched(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return false;
  std::ostringstream ino;
  ino << " ino:" << std::hex << st.st_ino << " ";
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator("/proc/self/fdinfo", ec)) {
    std::ifstream info(fd.path());
    for (std::string line; std::getline(info, line);)
      if (line.starts_with("inotify wd:") && line.find(ino.str()) != std::string::npos) return true;
  }
  return false;
}

/// Waits until this process watches `dir` (true) or `done` is set (false): bounded by the
/// resolution that sets `done` when it returns.
bool until_watched(const fs::path& dir, const std::atomic<bool>& done) {
  while (!done) {
    if (watched(dir)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

/// A wait longer than the test may take: a resolution that returned only at its deadline
/// would be caught by the test's timeout.
constexpr int kLongerThanTheTest = 3600;

}  // namespace

TEST_CASE("a socket owned by the owner resolves, with its directory chain") {
  Runtime rt;
  fs::create_directory(rt.dir / "pulse");
  auto s = rt.make_socket("pulse/native");
  auto src = resolve_source(rt.spec("pulse/native"));
  CHECK(S_ISSOCK(src.st.st_mode));
  REQUIRE(src.dirs.size() == 2);
  CHECK(src.dirs[0].relative == "");
  CHECK(src.dirs[1].relative == "pulse");
  CHECK(src.dirs[1].path == (rt.dir / "pulse").string());
  struct stat st {};
  ::stat((rt.dir / "pulse/native").c_str(), &st);
  CHECK(inode_of(src.st) == inode_of(st));
}

TEST_CASE("resolution refuses every path game") {
  Runtime rt;
  auto s = rt.make_socket("real");
  SUBCASE("a name that is not a socket is refused, saying what it is") {
    fs::create_symlink(rt.dir / "real", rt.dir / "link");  // a final symlink is not followed
    REQUIRE(::mkfifo((rt.dir / "fifo").c_str(), 0600) == 0);
    rt.tmp.write("file", "", 0600);
    const std::pair<const char*, const char*> refused[] = {
        {"link", "not a socket (it is a symbolic link)"},
        {"fifo", "not a socket (it is a FIFO)"},
        {"file", "not a socket (it is a regular file)"},
    };
    for (auto [name, reason] : refused) CHECK(why(rt.spec(name)) == reason);
  }
  SUBCASE("a symlink in the middle fails with ELOOP") {
    fs::create_directory(rt.dir / "d");
    fs::create_directory_symlink(rt.dir / "d", rt.dir / "pulse");
    auto s2 = rt.make_socket("d/native");
    auto failed = failure(rt.spec("pulse/native"));
    CHECK(failed.err == ELOOP);
    CHECK(failed.what.find("symbolic link") != std::string::npos);
  }
  SUBCASE("escaping with .. is refused") {
    CHECK(!why(rt.spec("../" + rt.dir.filename().string() + "/real")).empty());
  }
  SUBCASE("a second hard link is refused") {
    fs::create_hard_link(rt.dir / "real", rt.dir / "twin");
    CHECK(why(rt.spec("real")) == "it has 2 hard links (expected 1)");
  }
  SUBCASE("a runtime directory of someone else is refused") {
    auto spec = rt.spec("real");
    spec.owner = rt.owner + 1;
    CHECK(why(spec).find("not by the owner") != std::string::npos);
  }
  SUBCASE("a socket owned by someone else is refused") {
    SKIP_UNLESS_ROOT("only root can give a socket away");
    // The directory belongs to the owner, the socket to another user.
    auto spec = rt.spec("real");
    spec.owner = 2345;
    REQUIRE(::chown(rt.dir.c_str(), 2345, 2345) == 0);
    CHECK(why(spec) == "it is owned by uid 0, not by the owner (uid 2345)");
  }
  SUBCASE("a runtime directory that is a symlink is refused") {
    auto link = rt.dir.string() + "-link";
    fs::create_directory_symlink(rt.dir, link);
    auto spec = rt.spec("real");
    spec.base = link;
    CHECK(!why(spec).empty());
    fs::remove(link);
  }
}

TEST_CASE("a missing socket is waited for, and only as long as allowed") {
  Runtime rt;
  SUBCASE("no wait: fails at once, naming what is missing") {
    // Without a wait the message says nothing of one.
    CHECK(why(rt.spec("late")) == "it does not exist");
    CHECK(why(rt.spec("gone/late")) == (rt.dir / "gone").string() + " does not exist");
  }
  SUBCASE("it appears (in a directory that does not exist yet) while we wait") {
    // Each name is made only once the resolution watches the directory that lacks it, so it
    // is the wait that finds the directory and then the socket.
    std::atomic<bool> done = false;
    bool saw_base = false, saw_pulse = false;
    Fd s;
    std::thread maker([&] {
      saw_base = until_watched(rt.dir, done);
      fs::create_directory(rt.dir / "pulse");
      saw_pulse = until_watched(rt.dir / "pulse", done);
      s = rt.make_socket("pulse/native");
    });
    std::optional<VerifiedSource> src;
    try {
      src = resolve_source(rt.spec("pulse/native", kLongerThanTheTest));
    } catch (const Error& e) {
      FAIL_CHECK(e.what());
    }
    done = true;
    maker.join();
    CHECK(saw_base);
    CHECK(saw_pulse);
    REQUIRE(src);
    CHECK(S_ISSOCK(src->st.st_mode));
  }
  SUBCASE("it never appears: fails after the wait") {
    auto failed = failure(rt.spec("never", 1));
    CHECK(failed.what == "it does not exist (waited 1 s)");
    CHECK(failed.err == ENOENT);
  }
  SUBCASE("a wait counted from the hook's start ends there, however late the socket's turn") {
    // Issue 22, item 9: the hook's earlier sockets used up this one's hour already. A resolver
    // that counted from its own call would wait that hour (and the test would hang); one that
    // counts from the start looks once and gives up, without ever watching the directory.
    auto spec = rt.spec("never", kLongerThanTheTest);
    spec.waits_from = std::chrono::steady_clock::now() - std::chrono::seconds(kLongerThanTheTest);
    auto failed = failure(spec);
    CHECK(failed.what == "it does not exist (its wait of " + std::to_string(kLongerThanTheTest) +
                             " s, counted from the hook's start, is over)");
    CHECK(failed.err == ENOENT);
  }
  SUBCASE("a socket already there is found whatever is left of the wait") {
    auto s = rt.make_socket("here");
    auto spec = rt.spec("here", 1);
    spec.waits_from = std::chrono::steady_clock::now() - std::chrono::seconds(kLongerThanTheTest);
    CHECK(why(spec).empty());
  }
}

}  // namespace sockhook
