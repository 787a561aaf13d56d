#include "host/qemu_identity.hpp"

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "sys/users.hpp"

namespace sockhook {
namespace {

/// An excerpt of Debian 12's /etc/libvirt/qemu.conf, with the settings we read enabled.
constexpr const char* kDebianQemuConf = R"(# Master configuration file for the QEMU driver.
# All settings described here are optional - if omitted, sensible
# defaults are used.

#vnc_listen = "0.0.0.0"
#security_driver = "selinux"
security_driver = [ "selinux", "apparmor" ]
#security_default_confined = 1

# The user for QEMU processes run by the system instance. It can be
# specified as a user name or as a user id. The qemu driver will try to
# parse this value first as a name and then, if the name doesn't exist,
# as a user id.
#
# Since a sequence of digits is a valid user name, a leading plus sign
# can be used to ensure that a user id will not be interpreted as a user
# name.
#
# Some examples of valid values are:
#
#       user = "qemu"   # A user named "qemu"
#       user = "+0"     # Super user (uid=0)
#       user = "100"    # A user named "100" or a user with uid=100
#
#user = "root"
user = "libvirt-qemu"

# The group for QEMU processes run by the system instance. It can be
# specified in a similar way to user.
group = "+64055"

# What cgroup controllers to make use of with QEMU guests
#cgroup_controllers = [ "cpu", "devices", "memory", "blkio", "cpuset", "cpuacct" ]

cgroup_device_acl = [
    "/dev/null", "/dev/full", "/dev/zero",
    "/dev/random", "/dev/urandom",
    "/dev/ptmx", "/dev/kvm",
    "/dev/rtc","/dev/hpet"
]

dynamic_ownership = 1
remember_owner = 1
namespaces = [ "mount" ]
)";

bool have_libvirt_qemu() { return lookup_user("libvirt-qemu").has_value(); }

/// What a resolved identity must be; a field left out is not checked.
struct Expected {
  std::optional<uid_t> uid{};
  std::optional<gid_t> gid{};
  std::optional<std::string> user{}, group{}, source{};
};

void check_identity(const QemuIdentity& id, const Expected& expected) {
  if (expected.uid) CHECK(id.uid == *expected.uid);
  if (expected.gid) CHECK(id.gid == *expected.gid);
  if (expected.user) CHECK(id.user == *expected.user);
  if (expected.group) CHECK(id.group == *expected.group);
  if (expected.source) CHECK(id.source == *expected.source);
}

TEST_CASE("parse_qemu_conf reads user and group as libvirt does") {
  struct Case {
    const char* what;
    std::string text;
    std::optional<std::string> user, group;
  };
  const Case cases[] = {
      {"a realistic qemu.conf", kDebianQemuConf, "libvirt-qemu", "+64055"},
      {"commented-out settings are ignored", "#user = \"root\"\n  # group = \"root\"\n",
       std::nullopt, std::nullopt},
      // libvirt's own parser allows this; losing the value would silently change QEMU's group.
      {"a comment after a value", "user = \"qemu\"   # the QEMU user\ngroup = \"+107\" # kvm\n",
       "qemu", "+107"},
      {"a '#' inside quotes is part of the value", "user = \"a#b\"\n", "a#b", std::nullopt},
      {"single quotes and unquoted values", "user = 'libvirt-qemu'\ngroup = kvm\n", "libvirt-qemu",
       "kvm"},
      {"the first of repeated settings wins", "user = \"a\"\nuser = \"b\"\n", "a", std::nullopt},
      {"user and group inside multi-line lists are ignored",
       "cgroup_device_acl = [\n  \"/dev/null\",\n  \"/dev/kvm\"\n]\nuser = \"qemu\"\n", "qemu",
       std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    auto conf = parse_qemu_conf(c.text);
    CHECK(conf.user == c.user);
    CHECK(conf.group == c.group);
  }
}

TEST_CASE("load_qemu_conf treats a missing file as empty") {
  auto conf = load_qemu_conf("/nonexistent/sockhook/qemu.conf");
  CHECK_FALSE(conf.user.has_value());
  CHECK_FALSE(conf.group.has_value());
}

TEST_CASE("resolve_qemu_identity prefers the DAC label, then qemu.conf, then the default") {
  if (!have_libvirt_qemu()) {
    MESSAGE("skipped: this host has no libvirt-qemu user");
    return;
  }
  auto qemu = *lookup_user("libvirt-qemu");
  auto libvirt_qemu_gid = lookup_group("libvirt-qemu");
  QemuConf conf{"libvirt-qemu", "+64055"};
  // Expected ids come from this host's databases, never from one distribution's numbering.
  auto nobody = lookup_user("nobody");
  auto nogroup = lookup_group("nogroup");
  REQUIRE(nobody.has_value());

  SUBCASE("a static DAC label beats qemu.conf") {
    DacLabel dac{"+" + std::to_string(qemu.uid), "+107", true};
    check_identity(resolve_qemu_identity(dac, QemuConf{"nobody", "nogroup"}),
                   {qemu.uid, 107, "libvirt-qemu", group_name(107), "static seclabel"});
  }
  SUBCASE("a dynamic DAC label by name") {
    DacLabel dac{"nobody", "nogroup", false};
    REQUIRE(nogroup.has_value());
    check_identity(resolve_qemu_identity(dac, conf),
                   {nobody->uid, *nogroup, "nobody", "nogroup", "DAC label"});
  }
  SUBCASE("a numeric label without a passwd entry still resolves") {
    DacLabel dac{"+4000000", "+4000001", true};
    check_identity(resolve_qemu_identity(dac, {}), {4000000, 4000001, "+4000000", "4000001"});
  }
  SUBCASE("qemu.conf beats the default") {
    check_identity(resolve_qemu_identity(std::nullopt, QemuConf{"nobody", "+107"}),
                   {nobody->uid, 107, "nobody", group_name(107), "qemu.conf"});
  }
  SUBCASE("qemu.conf with a numeric user") {
    check_identity(
        resolve_qemu_identity(std::nullopt, QemuConf{"+" + std::to_string(qemu.uid), {}}),
        {.uid = qemu.uid, .user = "libvirt-qemu", .source = "qemu.conf"});
  }
  SUBCASE("qemu.conf that sets only the group keeps the default user") {
    auto kvm = lookup_group("kvm");
    REQUIRE(kvm.has_value());
    check_identity(resolve_qemu_identity(std::nullopt, QemuConf{std::nullopt, "kvm"}),
                   {.uid = qemu.uid, .gid = *kvm, .user = "libvirt-qemu", .source = "qemu.conf"});
  }
  SUBCASE("qemu.conf that sets only the user keeps the default group") {
    REQUIRE(libvirt_qemu_gid.has_value());
    check_identity(resolve_qemu_identity(std::nullopt, QemuConf{"nobody", std::nullopt}),
                   {.uid = nobody->uid, .gid = *libvirt_qemu_gid, .group = "libvirt-qemu"});
  }
  SUBCASE("the realistic qemu.conf") {
    check_identity(
        resolve_qemu_identity(std::nullopt, parse_qemu_conf(kDebianQemuConf)),
        {.uid = qemu.uid, .gid = 64055, .group = group_name(64055), .source = "qemu.conf"});
  }
  SUBCASE("the distribution default") {
    REQUIRE(libvirt_qemu_gid.has_value());
    check_identity(resolve_qemu_identity(std::nullopt, {}),
                   {qemu.uid, *libvirt_qemu_gid, "libvirt-qemu", "libvirt-qemu", "default"});
  }
}

TEST_CASE("resolve_qemu_identity fails for names that do not exist") {
  SUBCASE("an unknown user in the DAC label") {
    CHECK_THROWS_WITH_AS(resolve_qemu_identity(DacLabel{"no-such-user-x", "+0", true}, {}),
                         "cannot resolve the DAC label 'no-such-user-x:+0'", Error);
  }
  SUBCASE("an unknown group in the DAC label") {
    CHECK_THROWS_AS(resolve_qemu_identity(DacLabel{"+0", "no-such-group-x", true}, {}), Error);
  }
  SUBCASE("an unknown user in qemu.conf") {
    CHECK_THROWS_WITH_AS(resolve_qemu_identity(std::nullopt, QemuConf{"no-such-user-x", {}}),
                         "cannot resolve user 'no-such-user-x' from qemu.conf", Error);
  }
  SUBCASE("an unknown group in qemu.conf") {
    CHECK_THROWS_WITH_AS(resolve_qemu_identity(std::nullopt, QemuConf{"+0", "no-such-group-x"}),
                         "cannot resolve group 'no-such-group-x' from qemu.conf", Error);
  }
  SUBCASE("a malformed number") {
    CHECK_THROWS_AS(resolve_qemu_identity(std::nullopt, QemuConf{"+12x", {}}), Error);
    CHECK_THROWS_AS(resolve_qemu_identity(DacLabel{"+", "+", true}, {}), Error);
  }
}

}  // namespace
}  // namespace sockhook
