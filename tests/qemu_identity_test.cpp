#include "qemu_identity.hpp"

#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "error.hpp"
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

TEST_CASE("parse_qemu_conf reads user and group from a realistic qemu.conf") {
  auto conf = parse_qemu_conf(kDebianQemuConf);
  CHECK(conf.user == "libvirt-qemu");
  CHECK(conf.group == "+64055");
}

TEST_CASE("parse_qemu_conf ignores commented-out settings") {
  auto conf = parse_qemu_conf("#user = \"root\"\n  # group = \"root\"\n");
  CHECK_FALSE(conf.user.has_value());
  CHECK_FALSE(conf.group.has_value());
}

TEST_CASE("parse_qemu_conf accepts a comment after a value") {
  // libvirt's own parser allows this; losing the value would silently change QEMU's group.
  auto conf = parse_qemu_conf("user = \"qemu\"   # the QEMU user\ngroup = \"+107\" # kvm\n");
  CHECK(conf.user == "qemu");
  CHECK(conf.group == "+107");
  SUBCASE("a '#' inside quotes is part of the value") {
    auto c = parse_qemu_conf("user = \"a#b\"\n");
    CHECK(c.user == "a#b");
  }
}

TEST_CASE("parse_qemu_conf takes single quotes and unquoted values") {
  auto conf = parse_qemu_conf("user = 'libvirt-qemu'\ngroup = kvm\n");
  CHECK(conf.user == "libvirt-qemu");
  CHECK(conf.group == "kvm");
}

TEST_CASE("parse_qemu_conf takes the first of repeated settings, as libvirt does") {
  auto conf = parse_qemu_conf("user = \"a\"\nuser = \"b\"\n");
  CHECK(conf.user == "a");
}

TEST_CASE("parse_qemu_conf ignores user and group inside multi-line lists") {
  auto conf = parse_qemu_conf(
      "cgroup_device_acl = [\n  \"/dev/null\",\n  \"/dev/kvm\"\n]\nuser = \"qemu\"\n");
  CHECK(conf.user == "qemu");
  CHECK_FALSE(conf.group.has_value());
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

  SUBCASE("a static DAC label beats qemu.conf") {
    DacLabel dac{"+" + std::to_string(qemu.uid), "+107", true};
    auto id = resolve_qemu_identity(dac, QemuConf{"nobody", "nogroup"});
    CHECK(id.uid == qemu.uid);
    CHECK(id.gid == 107);
    CHECK(id.user == "libvirt-qemu");
    CHECK(id.group == group_name(107));
    CHECK(id.source == "static seclabel");
  }
  SUBCASE("a dynamic DAC label by name") {
    DacLabel dac{"nobody", "nogroup", false};
    auto id = resolve_qemu_identity(dac, conf);
    CHECK(id.uid == 65534);
    CHECK(id.gid == 65534);
    CHECK(id.user == "nobody");
    CHECK(id.group == "nogroup");
    CHECK(id.source == "DAC label");
  }
  SUBCASE("a numeric label without a passwd entry still resolves") {
    DacLabel dac{"+4000000", "+4000001", true};
    auto id = resolve_qemu_identity(dac, {});
    CHECK(id.uid == 4000000);
    CHECK(id.gid == 4000001);
    CHECK(id.user == "+4000000");
    CHECK(id.group == "4000001");
  }
  SUBCASE("qemu.conf beats the default") {
    auto id = resolve_qemu_identity(std::nullopt, QemuConf{"nobody", "+107"});
    CHECK(id.uid == 65534);
    CHECK(id.gid == 107);
    CHECK(id.user == "nobody");
    CHECK(id.group == group_name(107));
    CHECK(id.source == "qemu.conf");
  }
  SUBCASE("qemu.conf with a numeric user") {
    auto id = resolve_qemu_identity(std::nullopt, QemuConf{"+" + std::to_string(qemu.uid), {}});
    CHECK(id.uid == qemu.uid);
    CHECK(id.user == "libvirt-qemu");
    CHECK(id.source == "qemu.conf");
  }
  SUBCASE("qemu.conf that sets only the group keeps the default user") {
    // kvm's gid is whatever this host's packages chose (107 on one Debian 12, 993 on a
    // Debian 13 root): ask the group database, as resolve_qemu_identity must.
    auto kvm_gid = lookup_group("kvm");
    REQUIRE(kvm_gid.has_value());
    auto id = resolve_qemu_identity(std::nullopt, QemuConf{std::nullopt, "kvm"});
    CHECK(id.uid == qemu.uid);
    CHECK(id.user == "libvirt-qemu");
    CHECK(id.gid == *kvm_gid);
    CHECK(id.source == "qemu.conf");
  }
  SUBCASE("qemu.conf that sets only the user keeps the default group") {
    REQUIRE(libvirt_qemu_gid.has_value());
    auto id = resolve_qemu_identity(std::nullopt, QemuConf{"nobody", std::nullopt});
    CHECK(id.uid == 65534);
    CHECK(id.gid == *libvirt_qemu_gid);
    CHECK(id.group == "libvirt-qemu");
  }
  SUBCASE("the realistic qemu.conf") {
    auto id = resolve_qemu_identity(std::nullopt, parse_qemu_conf(kDebianQemuConf));
    CHECK(id.uid == qemu.uid);
    CHECK(id.gid == 64055);
    CHECK(id.group == group_name(64055));
    CHECK(id.source == "qemu.conf");
  }
  SUBCASE("the distribution default") {
    auto id = resolve_qemu_identity(std::nullopt, {});
    CHECK(id.uid == qemu.uid);
    CHECK(id.user == "libvirt-qemu");
    REQUIRE(libvirt_qemu_gid.has_value());
    CHECK(id.gid == *libvirt_qemu_gid);
    CHECK(id.group == "libvirt-qemu");
    CHECK(id.source == "default");
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
