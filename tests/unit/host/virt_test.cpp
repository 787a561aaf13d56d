#include "host/virt.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include <doctest/doctest.h>

namespace sockhook {
namespace {

TEST_CASE("a child's answer about a domain reads as what libvirt said") {
  CHECK(activity_from_answer("n") == DomainActivity::kNoLibvirt);
  CHECK(activity_from_answer("r") == DomainActivity::kUnreachable);
  CHECK(activity_from_answer("cu") == DomainActivity::kNone);
  CHECK(activity_from_answer("ci") == DomainActivity::kNone);
  CHECK(activity_from_answer("ca") == DomainActivity::kActive);
  // Connected, then nothing more within the bound: libvirt holds the domain.
  CHECK(activity_from_answer("c") == DomainActivity::kHeld);
  // Not even connected, a failure, or what no child writes: libvirt did not say.
  CHECK(activity_from_answer("") == DomainActivity::kSilent);
  CHECK(activity_from_answer("ce") == DomainActivity::kSilent);
  CHECK(activity_from_answer("cax") == DomainActivity::kSilent);
}

// libvirt's test driver runs inside the client library (no daemon): its default connection has
// one running domain, "test", with this UUID.
TEST_CASE("domain_activity asks libvirt in children, one per domain") {
  auto got = domain_activity(
      {"6695eb01-f6a4-8304-79aa-97f2502e193f", "3c9a4f2e-1b7d-4e6a-8f5c-2d0b9e8a7c61"}, 10000,
      "test:///default");
  REQUIRE(got.size() == 2);
  CHECK(got[0] == DomainActivity::kActive);
  CHECK(got[1] == DomainActivity::kNone);
  // A daemon that is not there: nothing can be starting a domain.
  got = domain_activity({"3c9a4f2e-1b7d-4e6a-8f5c-2d0b9e8a7c61"}, 10000,
                        "qemu+unix:///system?socket=/nonexistent/libvirt-sock");
  CHECK(got == std::vector{DomainActivity::kNoLibvirt});
  CHECK(domain_activity({}, 10000).empty());
  // More domains than children at a time: asked in rounds, every answer in its place.
  std::vector<std::string> many(40, "3c9a4f2e-1b7d-4e6a-8f5c-2d0b9e8a7c61");
  many[37] = "6695eb01-f6a4-8304-79aa-97f2502e193f";
  got = domain_activity(many, 10000, "test:///default");
  REQUIRE(got.size() == 40);
  CHECK(got[37] == DomainActivity::kActive);
  CHECK(std::count(got.begin(), got.end(), DomainActivity::kNone) == 39);
}

/// A unix socket at a fresh path under /tmp, bound, and listening if `listening`.
struct FakeDaemon {
  std::string dir, path;
  int fd = -1;
  explicit FakeDaemon(bool listening) {
    char tmpl[] = "/tmp/sockhook-virt-test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = dir + "/libvirt-sock";
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    if (listening) REQUIRE(::listen(fd, 8) == 0);
  }
  ~FakeDaemon() {
    ::close(fd);
    ::unlink(path.c_str());
    ::rmdir(dir.c_str());
  }
  std::string uri() const { return "qemu+unix:///system?socket=" + path; }
};

TEST_CASE("a daemon that is there but fails the connection leaves a domain alone") {
  const std::vector<std::string> one{"3c9a4f2e-1b7d-4e6a-8f5c-2d0b9e8a7c61"};
  // A socket nobody listens on (ECONNREFUSED): a daemon that ended. Nothing is starting it.
  {
    FakeDaemon gone(false);
    CHECK(domain_activity(one, 10000, gone.uri()) == std::vector{DomainActivity::kNoLibvirt});
  }
  // A daemon that hangs up on the first request (one restarting, or out of clients): the
  // connection fails, but libvirt is there and may be starting the domain.
  FakeDaemon rude(true);
  std::atomic<bool> done{false};
  std::thread hang_up([&] {
    while (!done) {
      int c = ::accept4(rude.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      // The client's first request read, then the end: it reads EOF (EIO), every time.
      char request[65536];
      (void)!::read(c, request, sizeof request);
      ::close(c);
    }
  });
  auto got = domain_activity(one, 10000, rude.uri());
  done = true;
  ::shutdown(rude.fd, SHUT_RDWR);
  hang_up.join();
  CHECK(got == std::vector{DomainActivity::kUnreachable});
}

}  // namespace
}  // namespace sockhook
