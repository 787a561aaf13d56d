#include "execute/executor.hpp"

#include <doctest/doctest.h>

namespace sockhook {
namespace {

constexpr const char* kUuid = "3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b01";

/// A journal of one socket lent to QEMU as uid/gid 0 (root:root resolves on every host).
Journal journal_for_root() {
  Journal j;
  j.domain = "vm";
  j.uuid = kUuid;
  j.qemu_uid = 0;
  j.qemu_gid = 0;
  JournalSocket s;
  s.name = "pipewire";
  s.plugin = "pipewire";
  s.owner = "alice";
  s.owner_uid = 1000;
  j.sockets.push_back(s);
  return j;
}

}  // namespace

TEST_CASE("A re-lend asks the policy for QEMU's identity as start does (S5)") {
  auto j = journal_for_root();
  const auto& s = j.sockets.front();
  Policy p;
  p.allow(kUuid, "alice", "pipewire");
  QemuIdentity configured{64055, 64055, "libvirt-qemu", "libvirt-qemu", "qemu.conf"};

  SUBCASE("an identity the policy names is lent again") {
    p.allow_qemu(kUuid, "root:root");
    CHECK_FALSE(relend_refusal(p, j, s, configured));
  }
  SUBCASE("once revoked, it is refused, saying which identity") {
    p.allow_qemu(kUuid, "root:root");
    p.revoke_qemu(kUuid, "root:root");
    auto refused = relend_refusal(p, j, s, configured);
    REQUIRE(refused);
    CHECK(refused->find("pipewire: not lent again: the policy no longer allows QEMU identity "
                        "+0:+0") == 0);
  }
  SUBCASE("an identity allowed for another domain does not count") {
    p.allow_qemu("00000000-0000-4000-8000-000000000000", "root:root");
    CHECK(relend_refusal(p, j, s, configured));
  }
  SUBCASE("the configured identity needs no policy line") {
    configured.uid = 0;
    configured.gid = 0;
    CHECK_FALSE(relend_refusal(p, j, s, configured));
  }
  SUBCASE("no configured identity: only the policy's") {
    CHECK(relend_refusal(p, j, s, std::nullopt));
  }
  SUBCASE("the owner's permission is asked first") {
    p.allow_qemu(kUuid, "root:root");
    p.revoke(kUuid, "alice", "");
    auto refused = relend_refusal(p, j, s, configured);
    REQUIRE(refused);
    CHECK(refused->find("the policy no longer allows alice to lend 'pipewire'") !=
          std::string::npos);
  }
}

}  // namespace sockhook
