#include "host/virt.hpp"

#include <algorithm>

#include <doctest/doctest.h>

namespace sockhook {
namespace {

TEST_CASE("a child's answer about a domain reads as what libvirt said") {
  CHECK(activity_from_answer("n") == DomainActivity::kNoLibvirt);
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

}  // namespace
}  // namespace sockhook
