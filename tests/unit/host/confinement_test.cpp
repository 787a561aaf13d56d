#include "host/confinement.hpp"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include <doctest/doctest.h>

#include "plan/plan.hpp"

// This kernel enforces no AppArmor or SELinux, so doctor's reading of the host is tested
// against fake root directories: the files it parses (laid out as Debian 12 and 13 ship them),
// with sockhook's rules put there by the real installer, dist/apparmor/sockhook-apparmor.

namespace sockhook {
namespace {

using Level = Check::Level;

struct FakeRoot {
  std::filesystem::path path;
  FakeRoot() {
    char name[] = "/tmp/sockhook-confinement-test-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~FakeRoot() { std::filesystem::remove_all(path); }
  FakeRoot(const FakeRoot&) = delete;
  FakeRoot& operator=(const FakeRoot&) = delete;

  void write(const std::string& name, const std::string& text) const {
    auto p = path / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::string root() const { return path.string(); }

  /// libvirt's files as Debian ships them; `trixie` picks Debian 13's abstraction.
  void libvirt(bool trixie) const {
    write("etc/apparmor.d/libvirt/TEMPLATE.qemu",
          "#include <tunables/global>\n\n"
          "profile LIBVIRT_TEMPLATE flags=(attach_disconnected) {\n"
          "  #include <abstractions/libvirt-qemu>\n}\n");
    if (trixie) {
      write("etc/apparmor.d/abstractions/libvirt-qemu",
            "  /dev/kvm rw,\n  include if exists <abstractions/libvirt-qemu.d>\n"
            "  include if exists <local/abstractions/libvirt-qemu>\n");
    } else {
      write("etc/apparmor.d/abstractions/libvirt-qemu",
            "  /dev/kvm rw,\n  # Site-specific additions and overrides.\n"
            "  #include <local/abstractions/libvirt-qemu>\n");
      write("etc/apparmor.d/local/abstractions/libvirt-qemu", "");
    }
    write("sys/module/apparmor/parameters/enabled", "Y\n");
  }

  /// Runs the installer the way install.sh and the Debian package do, on this tree.
  int installer(const std::string& action) const {
    auto cmd = std::string("bash ") + SOCKHOOK_SOURCE_DIR + "/dist/apparmor/sockhook-apparmor " +
               action + " --root " + root() + " >/dev/null";
    return std::system(cmd.c_str());
  }
};

int count(const std::vector<Check>& checks, Level level, const std::string& needle) {
  int n = 0;
  for (const auto& c : checks)
    if (c.level == level &&
        (c.what.find(needle) != std::string::npos || c.advice.find(needle) != std::string::npos))
      ++n;
  return n;
}

bool any_fail(const std::vector<Check>& checks) {
  for (const auto& c : checks)
    if (c.level == Level::kFail) return true;
  return false;
}

}  // namespace

TEST_CASE("doctor sees AppArmor as enabled only when the kernel says Y") {
  FakeRoot r;
  CHECK_FALSE(apparmor_enabled(r.root()));
  r.write("sys/module/apparmor/parameters/enabled", "N\n");
  CHECK_FALSE(apparmor_enabled(r.root()));
  r.write("sys/module/apparmor/parameters/enabled", "Y\n");
  CHECK(apparmor_enabled(r.root()));
}

TEST_CASE("doctor fails an AppArmor host whose VM profiles lack sockhook's rules") {
  for (bool trixie : {false, true}) {
    CAPTURE(trixie);
    FakeRoot r;
    r.libvirt(trixie);
    auto checks = check_confinement(r.root());
    CHECK(count(checks, Level::kFail, "no VM's profile allows its lend directory") == 1);
    CHECK(count(checks, Level::kFail, "sockhook-apparmor install") == 1);
  }
}

TEST_CASE("doctor accepts the rules where the installer puts them, on both layouts") {
  // Debian 12: a block in local/abstractions/libvirt-qemu; Debian 13: a drop-in file.
  for (auto [trixie, where] : {std::pair{false, "local/abstractions/libvirt-qemu"},
                               std::pair{true, "abstractions/libvirt-qemu.d/sockhook"}}) {
    CAPTURE(trixie);
    FakeRoot r;
    r.libvirt(trixie);
    REQUIRE(r.installer("install") == 0);
    auto checks = check_apparmor_rules(r.root());
    CHECK_FALSE(any_fail(checks));
    CHECK(count(checks, Level::kOk, where) == 1);
    // And remove takes them out again: doctor notices.
    REQUIRE(r.installer("remove") == 0);
    CHECK(any_fail(check_apparmor_rules(r.root())));
  }
}

TEST_CASE("doctor says when the rules sit in a directory that libvirt does not include") {
  FakeRoot r;
  r.libvirt(false);  // Debian 12 has no abstractions/libvirt-qemu.d include
  r.write("etc/apparmor.d/abstractions/libvirt-qemu.d/sockhook",
          "/run/sockhook/@{profile_name}/ r,\n/run/sockhook/@{profile_name}/* rw,\n");
  CHECK(count(check_apparmor_rules(r.root()), Level::kFail, "does not include that directory") ==
        1);
}

TEST_CASE("doctor fails a rule that opens every VM's lend directory to every VM") {
  FakeRoot r;
  r.libvirt(true);
  REQUIRE(r.installer("install") == 0);
  r.write("etc/apparmor.d/abstractions/libvirt-qemu.d/local-audio",
          "  /run/sockhook/** rw,  # someone's quick fix\n");
  auto checks = check_apparmor_rules(r.root());
  CHECK(count(checks, Level::kFail, "'/run/sockhook/** rw,'") == 1);
  CHECK(count(checks, Level::kFail, "every other VM's lent sockets") == 1);
  // A dotfile or a package manager's leftover is not read by AppArmor, nor by doctor.
  std::filesystem::remove(r.path / "etc/apparmor.d/abstractions/libvirt-qemu.d/local-audio");
  r.write("etc/apparmor.d/abstractions/libvirt-qemu.d/.old", "/run/sockhook/** rw,\n");
  r.write("etc/apparmor.d/abstractions/libvirt-qemu.d/x.dpkg-old", "/run/sockhook/** rw,\n");
  CHECK_FALSE(any_fail(check_apparmor_rules(r.root())));
}

TEST_CASE("doctor does not take a read-only or owner-only rule for sockhook's rules") {
  // Connecting to a socket needs write, and a lent socket belongs to its owner, not to QEMU.
  for (const char* rule :
       {"/run/sockhook/@{profile_name}/* r,\n", "owner /run/sockhook/@{profile_name}/* rw,\n"}) {
    CAPTURE(rule);
    FakeRoot r;
    r.libvirt(true);
    r.write("etc/apparmor.d/abstractions/libvirt-qemu.d/sockhook", rule);
    CHECK(count(check_apparmor_rules(r.root()), Level::kFail, "no VM's profile allows") == 1);
  }
}

TEST_CASE("doctor fails a template that does not include the abstraction") {
  FakeRoot r;
  r.libvirt(true);
  REQUIRE(r.installer("install") == 0);
  r.write("etc/apparmor.d/libvirt/TEMPLATE.qemu", "profile LIBVIRT_TEMPLATE {\n}\n");
  CHECK(count(check_apparmor_rules(r.root()), Level::kFail, "does not include") == 1);
  std::filesystem::remove(r.path / "etc/apparmor.d/libvirt/TEMPLATE.qemu");
  CHECK(count(check_apparmor_rules(r.root()), Level::kFail, "is missing") == 1);
}

TEST_CASE("doctor on an SELinux host says what works, what does not, and what to do") {
  FakeRoot r;
  r.write("sys/fs/selinux/enforce", "1");
  auto checks = check_confinement(r.root());
  CHECK(count(checks, Level::kOk, "AppArmor is not enabled") == 1);
  CHECK(count(checks, Level::kWarn, "SELinux is enforcing") == 1);
  CHECK(count(checks, Level::kWarn, "user_tmp_t") == 1);
  CHECK(count(checks, Level::kWarn, "use method proxy") == 1);
  CHECK(count(checks, Level::kWarn, "Either reaches every VM") == 1);
  r.write("sys/fs/selinux/enforce", "0");
  checks = check_confinement(r.root());
  CHECK(count(checks, Level::kWarn, "permissive") == 1);
  CHECK(count(checks, Level::kWarn, "user_tmp_t") == 0);
}

TEST_CASE("The warning for acl and group names the path, the rule and that it reaches every VM") {
  auto w = original_path_apparmor_warning("acl", "/run/user/1000/pipewire-0");
  CHECK(w.find("original path /run/user/1000/pipewire-0") != std::string::npos);
  CHECK(w.find("'/run/user/1000/pipewire-0 rw,'") != std::string::npos);
  CHECK(w.find("reaches every VM") != std::string::npos);
}

TEST_CASE("doctor checks the hook's mount rules in libvirtd's profile, loaded or not") {
  FakeRoot r;
  r.libvirt(true);
  r.write("etc/apparmor.d/usr.sbin.libvirtd",
          "profile libvirtd /usr/sbin/libvirtd {\n  /etc/libvirt/hooks/** rmix,\n"
          "  include if exists <local/usr.sbin.libvirtd>\n}\n");
  r.write("etc/apparmor.d/local/usr.sbin.libvirtd", "# Site-specific additions\n");
  SUBCASE("loaded and enforcing, no rules: the kernel refuses every bind lend") {
    r.write("sys/kernel/security/apparmor/profiles", "libvirtd (enforce)\nother (complain)\n");
    auto checks = check_apparmor_rules(r.root());
    CHECK(count(checks, Level::kFail,
                "the hook runs inside libvirtd's profile (enforce), and " + r.root() +
                    "/etc/apparmor.d/local/usr.sbin.libvirtd lacks sockhook's mount rules") == 1);
    CHECK(r.installer("install") == 0);
    checks = check_apparmor_rules(r.root());
    CHECK(count(checks, Level::kOk, "lets it mount in /run/sockhook/libvirt-*/ (bind lends)") == 1);
    CHECK_FALSE(any_fail(checks));
    CHECK(r.installer("remove") == 0);
  }
  SUBCASE("not loaded: a warning, not a failure") {
    auto checks = check_apparmor_rules(r.root());
    CHECK(count(checks, Level::kWarn, "libvirtd's profile is not loaded now") == 1);
  }
}

TEST_CASE("connect() counts as mediated only with af_unix in the kernel and in a pinned set") {
  FakeRoot r;
  CHECK_FALSE(apparmor_mediates_unix_sockets(r.root()));  // Debian 13's 6.12: network_v8 only
  r.write("sys/kernel/security/apparmor/features/network_v8/af_mask", "unspec unix inet\n");
  CHECK_FALSE(apparmor_mediates_unix_sockets(r.root()));
  r.write("sys/kernel/security/apparmor/features/network_v9/af_unix", "yes\n");
  CHECK(apparmor_mediates_unix_sockets(r.root()));  // no parser.conf: the kernel's set
  r.write("etc/apparmor/parser.conf",
          "# pinned\npolicy-features=/usr/share/apparmor-features/features\n");
  CHECK_FALSE(apparmor_mediates_unix_sockets(r.root()));  // pinned file unreadable: unsure
  r.write("usr/share/apparmor-features/features", "network_v8 {af_mask {unspec unix inet}}\n");
  CHECK_FALSE(apparmor_mediates_unix_sockets(r.root()));  // Debian's pinned set: no af_unix
  r.write("usr/share/apparmor-features/features", "network_v9 {af_unix {yes}}\n");
  CHECK(apparmor_mediates_unix_sockets(r.root()));
}

TEST_CASE("doctor says what keeps VMs apart, and what does not, for each method (S10)") {
  FakeRoot r;
  auto checks = check_confinement(r.root());
  CHECK(vm_lend_separation_gap(r.root()) == "no AppArmor confines each VM's QEMU on this kernel");
  CHECK(count(checks, Level::kWarn,
              "VMs apart: no AppArmor confines each VM's QEMU on this kernel, so a bind, acl or "
              "group lend reaches every VM's QEMU") == 1);
  r.libvirt(true);
  checks = check_confinement(r.root());
  CHECK(count(checks, Level::kWarn,
              "VMs apart: this kernel's AppArmor does not mediate connecting to sockets") == 1);
  r.write("sys/kernel/security/apparmor/features/network_v9/af_unix", "yes\n");
  checks = check_confinement(r.root());
  CHECK(vm_lend_separation_gap(r.root()) == "");
  CHECK(count(checks, Level::kWarn, "VMs apart") == 0);
  CHECK(count(checks, Level::kOk, "VMs apart: each VM's AppArmor profile keeps its QEMU") == 1);
}

}  // namespace sockhook
