#include "host/domain_cgroup.hpp"

#include <doctest/doctest.h>

using namespace sockhook;

namespace {
const DomainCgroup kA{1, "/machine"};
}

TEST_CASE("A domain's cgroup without systemd: /machine/qemu-<id>-<name>.libvirt-qemu") {
  // As measured here (libvirt 9.0, no systemd) for a domain "acc cg ü" with id 1 (LIBVIRT-NOTES).
  CHECK(cgroup_path_in_domain("/machine/qemu-1-acccg.libvirt-qemu/emulator", kA));
  CHECK(cgroup_path_in_domain("/machine/qemu-1-acccg.libvirt-qemu", kA));
  CHECK(cgroup_path_in_domain("/machine/qemu-1-acccg.libvirt-qemu/vcpu0", kA));
  // A name with nothing libvirt keeps ("ü ü"): the machine name is just qemu-1.
  CHECK(cgroup_path_in_domain("/machine/qemu-1.libvirt-qemu/emulator", kA));
}

TEST_CASE("A domain's cgroup with systemd: machine.slice/machine-qemu\\x2d<id>\\x2d<name>.scope") {
  CHECK(cgroup_path_in_domain("/machine.slice/machine-qemu\\x2d1\\x2dwin11.scope/libvirt/emulator",
                              kA));
  CHECK(cgroup_path_in_domain("/machine.slice/machine-qemu\\x2d1\\x2dWindows11.scope", kA));
  CHECK(cgroup_path_in_domain("/machine.slice/machine-qemu\\x2d1.scope", kA));
}

TEST_CASE("Another VM's cgroup, or none, is not this domain's (S10)") {
  for (const char* path : {
           "/machine/qemu-2-acccg.libvirt-qemu/emulator",   // B
           "/machine/qemu-12-acccg.libvirt-qemu/emulator",  // id 12 starts with 1
           "/machine/qemu-10.libvirt-qemu",
           "/machine.slice/machine-qemu\\x2d12\\x2dwin11.scope/libvirt/emulator",
           "/machine.slice/machine-qemu\\x2d2\\x2dqemu\\x2d1\\x2dx.scope",  // B named "qemu-1-x"
           "/",                                                             // outside any VM
           "/machine",
           "/user.slice/user-1000.slice/session-2.scope",
           // A subtree someone was delegated: the same names, but not at the partition's place.
           "/user.slice/user-1000.slice/user@1000.service/machine/qemu-1-a.libvirt-qemu",
           "/system.slice/machine/qemu-1-a.libvirt-qemu",
           "/machine/../machine/qemu-1-a.libvirt-qemu",
           "/machine/qemu-1-a.libvirt-qemu.evil",
           "/machine/qemu-1-a.libvirt-lxc",
           "/machine/xqemu-1-a.libvirt-qemu",
           "/machine.slice/machine-qemu-1-a.scope",  // unescaped: not a name systemd makes
           "machine/qemu-1-a.libvirt-qemu",          // not absolute
           "",
       }) {
    CAPTURE(path);
    CHECK_FALSE(cgroup_path_in_domain(path, kA));
  }
}

TEST_CASE("A domain that does not run yet matches nothing") {
  CHECK_FALSE(cgroup_path_in_domain("/machine/qemu--1.libvirt-qemu", DomainCgroup{-1, "/machine"}));
  CHECK_FALSE(
      cgroup_path_in_domain("/machine/qemu-1-a.libvirt-qemu", DomainCgroup{-1, "/machine"}));
}

TEST_CASE("A partition of the domain's own (<resource><partition>) in both layouts") {
  const DomainCgroup d{5, "/machine/gaming"};
  CHECK(cgroup_path_in_domain("/machine/gaming.partition/qemu-5-w.libvirt-qemu/emulator", d));
  CHECK(cgroup_path_in_domain("/machine.slice/machine-gaming.slice/machine-qemu\\x2d5\\x2dw.scope",
                              d));
  CHECK_FALSE(cgroup_path_in_domain("/machine/qemu-5-w.libvirt-qemu/emulator", d));
  CHECK_FALSE(cgroup_path_in_domain("/machine.slice/machine-qemu\\x2d5\\x2dw.scope", d));
  // A partition component that looks like a controller or a control file gains a '_'.
  const DomainCgroup odd{5, "/cpu.x"};
  CHECK(cgroup_path_in_domain("/_cpu.x/qemu-5-w.libvirt-qemu", odd));
  // systemd escapes '-' inside a slice component.
  const DomainCgroup dash{5, "/machine/my-vms"};
  CHECK(cgroup_path_in_domain(
      "/machine.slice/machine-my\\x2dvms.slice/machine-qemu\\x2d5\\x2dw.scope/libvirt", dash));
}

TEST_CASE("/proc/PID/cgroup: one hierarchy that places the process in the domain is proof") {
  // This machine's hybrid layout: v1 controllers and a v2 hierarchy (LIBVIRT-NOTES).
  const char* hybrid =
      "9:name=systemd:/\n8:pids:/\n4:memory:/machine/qemu-1-acccg.libvirt-qemu\n"
      "1:cpu:/machine/qemu-1-acccg.libvirt-qemu/emulator\n"
      "0::/machine/qemu-1-acccg.libvirt-qemu/emulator\n";
  CHECK(proc_cgroup_in_domain(hybrid, kA));
  CHECK_FALSE(proc_cgroup_in_domain(hybrid, DomainCgroup{2, "/machine"}));
  CHECK(proc_cgroup_in_domain("0::/machine.slice/machine-qemu\\x2d1\\x2dw.scope/libvirt/emulator\n",
                              kA));
  CHECK_FALSE(proc_cgroup_in_domain("0::/\n", kA));
  CHECK_FALSE(proc_cgroup_in_domain("", kA));
  // A directory name with ':' cannot shift the fields onto another path.
  CHECK_FALSE(proc_cgroup_in_domain("0::/x:/machine/qemu-1-a.libvirt-qemu\n", kA));
  CHECK_FALSE(proc_cgroup_in_domain("0:/machine/qemu-1-a.libvirt-qemu\n", kA));
}

TEST_CASE("The journal form of a domain's cgroup") {
  auto d = DomainCgroup::parse("5:/machine/gaming");
  REQUIRE(d);
  CHECK(d->id == 5);
  CHECK(d->partition == "/machine/gaming");
  CHECK(d->to_string() == "5:/machine/gaming");
  CHECK(DomainCgroup::parse("-1:/machine")->id == -1);
  for (const char* bad : {"", "5", ":/machine", "x:/machine", "5:machine", "5:/", "-2:/machine",
                          "5:/machine/..", "5 :/machine", "99999999999999999999:/machine"}) {
    CAPTURE(bad);
    CHECK_FALSE(DomainCgroup::parse(bad));
  }
  CHECK(describe_domain_cgroup(kA) ==
        "/machine/qemu-1[-*].libvirt-qemu or /machine.slice/machine-qemu\\x2d1[\\x2d*].scope");
}
