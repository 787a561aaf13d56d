#include "host/proc.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <doctest/doctest.h>

#include "test_files.hpp"

namespace sockhook {
namespace {

const std::string kUuid = "3c9a4f2e-1b7d-4e6a-8f5c-2d0b9e8a7c61";

/// A child whose arguments hold "-uuid kUuid", as anyone's process can; killed at the end.
struct FakeQemu {
  pid_t pid = -1;
  FakeQemu() {
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", "sleep 30; :", "-uuid", kUuid.c_str(), nullptr);
      _exit(127);
    }
    // Until the exec happened, the command line is ours.
    for (int i = 0; i < 200 && process_starttime(pid) != 0; ++i) {
      std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
      std::string args((std::istreambuf_iterator<char>(in)), {});
      if (args.find("-uuid") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~FakeQemu() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
};

std::string status_xml(const std::string& uuid, pid_t pid) {
  return "<domstatus state='running' reason='booted' pid='" + std::to_string(pid) +
         "'><domain type='kvm' id='7'><name>vm</name><uuid>" + uuid +
         "</uuid></domain></domstatus>";
}

}  // namespace

TEST_CASE("qemu_running believes libvirt's root-owned status file, not a process's arguments") {
  if (geteuid() != 0) {
    MESSAGE("skipped: the status files must be root's");
    return;
  }
  TempDir dir(0755);
  FakeQemu qemu;
  SUBCASE("arguments alone prove nothing") { CHECK_FALSE(qemu_running(kUuid, dir.path)); }
  SUBCASE("a status file naming the uuid and the pid") {
    dir.write("vm.xml", status_xml(kUuid, qemu.pid), 0600);
    CHECK(qemu_running(kUuid, dir.path));
    CHECK_FALSE(qemu_running("3c9a4f2e-1b7d-4e6a-8f5c-000000000000", dir.path));
  }
  SUBCASE("a status file older than the process: its pid was reused") {
    auto file = dir.write("vm.xml", status_xml(kUuid, qemu.pid), 0600);
    const timespec old[2] = {{0, UTIME_OMIT}, {time(nullptr) - 3600, 0}};
    REQUIRE(utimensat(AT_FDCWD, file.c_str(), old, 0) == 0);
    CHECK_FALSE(qemu_running(kUuid, dir.path));
  }
  SUBCASE("a status file others can write, or in a directory others can write") {
    dir.write("vm.xml", status_xml(kUuid, qemu.pid), 0666);
    CHECK_FALSE(qemu_running(kUuid, dir.path));
    chmod(dir.path.c_str(), 0757);
    chmod((dir.path / "vm.xml").c_str(), 0600);
    CHECK_FALSE(qemu_running(kUuid, dir.path));
  }
  SUBCASE("libvirt 11's status directory, owned by QEMU's user (0755)") {
    dir.write("vm.xml", status_xml(kUuid, qemu.pid), 0600);
    REQUIRE(chown(dir.path.c_str(), 64055, 64055) == 0);
    CHECK(qemu_running(kUuid, dir.path));
    // Its owner can write the directory, not a root-owned file in it.
    REQUIRE(chown((dir.path / "vm.xml").c_str(), 64055, 64055) == 0);
    CHECK_FALSE(qemu_running(kUuid, dir.path));
  }
  SUBCASE("a status file naming a process without the uuid in its arguments") {
    dir.write("vm.xml", status_xml(kUuid, getpid()), 0600);
    CHECK_FALSE(qemu_running(kUuid, dir.path));
  }
  SUBCASE("no status directory") { CHECK_FALSE(qemu_running(kUuid, dir.path / "missing")); }
}

}  // namespace sockhook
