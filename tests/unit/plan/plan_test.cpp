#include "plan/plan.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "fixtures.hpp"
#include "lend/lend_context.hpp"
#include "plan/plan_text.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

namespace fs = std::filesystem;

const std::string kUuid = "3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b01";
const std::string kLend = "/run/sockhook/libvirt-" + kUuid;
constexpr uid_t kQemuUid = 64055;
constexpr gid_t kQemuGid = 64055;

/// Hand-built planning inputs: fake users, the repo's plugins, a policy allowing alice.
struct Fixture : PlanFixture {
  explicit Fixture(const std::string& sockets, const std::string& extra = "",
                   const std::string& uuid = kUuid)
      : PlanFixture(sockets, extra, uuid) {
    policy.allow(kUuid, "alice", "*");
    in.qemu = default_qemu();
    User alice{1000, 1000, "alice", "/home/alice"};
    in.owners = {{"alice", alice},
                 {"1000", alice},
                 {"root", User{0, 0, "root", "/root"}},
                 {"0", User{0, 0, "root", "/root"}},
                 {"sys", User{100, 100, "sys", "/nonexistent"}},
                 {"nobody", User{65534, 65534, "nobody", "/nonexistent"}},
                 {"ghost", std::nullopt}};
    in.uids = UidRange{1000, 60000};
  }

  /// Replaces the policy with one that allows `owner` to lend only `plugin`.
  void allow_only(const std::string& owner, const std::string& plugin) {
    policy = Policy{};
    policy.allow(kUuid, owner, plugin);
  }
};

/// The plan of a domain with these sockets (and `extra`, `uuid`), with nothing else changed.
Plan plan_of(const std::string& sockets, const std::string& extra = "",
             const std::string& uuid = kUuid) {
  return Fixture(sockets, extra, uuid).plan();
}

/// The only socket of a plan without errors, whose one domain step makes the lend directory
/// or, unless `lend_dir`, which has no domain step at all.
const SocketPlan& clean_socket(const Plan& plan, bool lend_dir = true) {
  CHECK(plan.errors.empty());
  REQUIRE(plan.domain_steps.size() == (lend_dir ? 1u : 0u));
  if (lend_dir) CHECK(std::holds_alternative<MakeLendDir>(plan.domain_steps[0]));
  return only_socket(plan);
}

/// Step `index` of the socket `s`, which must be a `T`.
template <class T>
const T& step_as(const SocketPlan& s, std::size_t index) {
  const auto* step = std::get_if<T>(&s.steps.at(index));
  REQUIRE(step != nullptr);
  return *step;
}

/// Checks that step `index` of `s` grants QEMU's uid `perms` on `path`, a directory or not.
void check_grant(const SocketPlan& s, std::size_t index, const std::string& path,
                 const std::string& perms, bool directory) {
  const auto& acl = step_as<GrantAcl>(s, index);
  CHECK(acl.path == path);
  CHECK(acl.perms == perms);
  CHECK(acl.directory == directory);
  CHECK(acl.uid == kQemuUid);
}

/// Checks that the JSON object `got` has each member of `want`, with the same value.
void check_members(const nlohmann::json& got, const nlohmann::json& want) {
  for (const auto& member : want.items()) {
    CAPTURE(member.key());
    CHECK(got.at(member.key()) == member.value());
  }
}

int count_containing(const std::vector<std::string>& lines, const std::string& needle) {
  return static_cast<int>(std::count_if(lines.begin(), lines.end(),
                                        [&](const std::string& l) { return contains(l, needle); }));
}

std::string qemu_env(const std::string& name, const std::string& value) {
  return "<qemu:commandline><qemu:env name='" + name + "' value='" + value +
         "'/></qemu:commandline>";
}

TEST_CASE("A bind lend of pulseaudio plans the exact steps, paths and environment") {
  auto plan = plan_of("<s:socket plugin='pulseaudio' owner='alice' method='bind'/>");
  const auto& s = clean_socket(plan);
  CHECK(plan.warnings.empty());
  CHECK(plan.domain == "vm1");
  CHECK(plan.uuid == kUuid);
  CHECK(plan.lend_dir == kLend);
  const auto& dir = std::get<MakeLendDir>(plan.domain_steps[0]);
  CHECK(dir.path == kLend);
  CHECK(dir.qemu_uid == kQemuUid);

  CHECK(s.method == Method::kBind);
  CHECK(s.method_note.empty());
  CHECK(s.owner.uid == 1000);
  CHECK(s.source == "/run/user/1000/pulse/native");
  CHECK(s.target == kLend + "/pulse-native");
  CHECK(s.plugin_file.ends_with("/plugins/pulseaudio.xml"));
  REQUIRE(s.steps.size() == 6);
  const auto& conf = step_as<CopyFile>(s, 5);
  CHECK(conf.base.empty());
  CHECK(conf.relative.empty());
  CHECK(conf.target == kLend + "/pulse-client.conf");
  CHECK(conf.content == std::optional<std::string>("enable-shm = no\n"));
  CHECK(conf.qemu_uid == kQemuUid);

  const auto& verify = step_as<VerifySource>(s, 0);
  CHECK(verify.runtime_dir == "/run/user/1000");
  CHECK(verify.relative == "pulse/native");
  CHECK(verify.owner == 1000);
  CHECK(verify.wait_seconds == kDefaultWaitSeconds);

  const auto& create = step_as<CreateTarget>(s, 1);
  CHECK(create.path == kLend + "/pulse-native");

  const auto& bind = step_as<BindMount>(s, 2);
  CHECK(bind.source == "/run/user/1000/pulse/native");
  CHECK(bind.target == kLend + "/pulse-native");

  check_grant(s, 3, "/run/user/1000/pulse/native", "rw", false);
  CHECK(std::get<GrantAcl>(s.steps[3]).only_if_denied);

  const auto& copy = step_as<CopyFile>(s, 4);
  CHECK(copy.base == "/home/alice");
  CHECK(copy.relative == ".config/pulse/cookie");
  CHECK(copy.source() == "/home/alice/.config/pulse/cookie");
  CHECK(copy.target == kLend + "/pulse-cookie");
  CHECK(copy.owner == 1000);
  CHECK(copy.qemu_uid == kQemuUid);
  CHECK(copy.max_bytes == kMaxCompanionBytes);
  CHECK(copy.optional);

  REQUIRE(s.env.size() == 3);
  CHECK(s.env[0].name == "PULSE_SERVER");
  CHECK(s.env[0].value == "unix:" + kLend + "/pulse-native");
  CHECK(s.env[1].name == "PULSE_COOKIE");
  CHECK(s.env[1].value == kLend + "/pulse-cookie");
  CHECK(s.env[2].name == "PULSE_CLIENTCONFIG");
  CHECK(s.env[2].value == kLend + "/pulse-client.conf");
  CHECK_FALSE(s.env[0].provided);
  // None is given by the domain: one warning each, with the annotate hint.
  REQUIRE(s.warnings.size() == 3);
  CHECK(s.warnings[0].text() ==
        "the domain XML does not give QEMU PULSE_SERVER=unix:" + kLend +
            "/pulse-native (hint: sockhook annotate vm1 --plugin pulseaudio "
            "--owner alice)");
}

TEST_CASE("wait= and a numeric owner reach the plan") {
  auto plan = plan_of("<s:socket plugin='wayland' owner='1000' method='bind' wait='12'/>");
  CHECK(plan.errors.empty());
  const auto& s = only_socket(plan);
  CHECK(s.owner.name == "alice");
  CHECK(std::get<VerifySource>(s.steps.at(0)).wait_seconds == 12);
  CHECK(s.source == "/run/user/1000/wayland-0");
  REQUIRE(s.env.size() == 3);
  CHECK(s.env[0].value == kLend + "/wayland-0");
  CHECK(s.env[1].value == "wayland");
}

TEST_CASE("A proxy lend plans one StartProxy step") {
  auto plan = plan_of("<s:socket plugin='wayland' owner='alice' method='proxy'/>");
  const auto& s = clean_socket(plan);
  CHECK(s.method == Method::kProxy);
  REQUIRE(s.steps.size() == 1);
  const auto& proxy = step_as<StartProxy>(s, 0);
  CHECK(proxy.listen_path == kLend + "/wayland-0");
  CHECK(proxy.source == "/run/user/1000/wayland-0");
  CHECK(proxy.owner == 1000);
  CHECK(proxy.owner_gid == 1000);
  CHECK(proxy.qemu_uid == kQemuUid);
  CHECK(proxy.qemu_gid == kQemuGid);
  CHECK(s.target == kLend + "/wayland-0");
}

TEST_CASE("Method context: one StartContext step where the build has it, one line where not") {
  auto plan = plan_of("<s:socket plugin='pipewire' owner='alice' method='context' capture='yes'/>");
  if (auto why = context_unavailable()) {
    // Debian 12's libpipewire 0.3.65 has no security context: refused at plan time.
    REQUIRE(plan.errors.size() == 1);
    CHECK(plan.errors[0].message == *why);
    CHECK(why->find("libpipewire 1.2") != std::string::npos);
    CHECK(plan.sockets.empty());
  } else {
    const auto& s = clean_socket(plan);
    CHECK(s.method == Method::kContext);
    CHECK(revocable(s.method));
    REQUIRE(s.steps.size() == 1);
    const auto& c = step_as<StartContext>(s, 0);
    CHECK(c.listen_path == kLend + "/pipewire-0");
    CHECK(c.source == "/run/user/1000/pipewire-0");
    CHECK(c.owner == 1000);
    CHECK(c.qemu_uid == kQemuUid);
    CHECK(c.capture);
    CHECK(s.target == kLend + "/pipewire-0");
  }
}

TEST_CASE("Method context needs a plugin whose server has security contexts") {
  auto plan = plan_of("<s:socket plugin='pulseaudio' owner='alice' method='context'/>");
  REQUIRE(plan.errors.size() == 1);
  CHECK(plan.errors[0].message.find("method context needs a plugin whose server offers security "
                                    "contexts (pipewire, jack, wayland); 'pulseaudio' has none") !=
        std::string::npos);
}

/// A wayland socket of alice's, with what the compositor said of security contexts and
/// whether an LSM keeps VMs apart ("" for yes), on a build that has the Wayland holder.
struct WaylandFixture : Fixture {
  WaylandFixture(const std::string& method, std::optional<bool> offered,
                 const std::string& gap = "")
      : Fixture("<s:socket plugin='wayland' owner='alice'" +
                (method.empty() ? std::string() : " method='" + method + "'") + "/>") {
    SourceFacts facts{true, std::nullopt, std::vector<std::string>{}, {}};
    facts.security_context = offered;
    facts.security_context_note = offered ? "" : "cannot connect to it";
    in.sources["wayland"] = facts;
    in.vm_separation_gap = gap;
    in.wayland_context_gap = std::nullopt;
  }
};

TEST_CASE("Wayland context: a StartContext step on the compositor, and no reach line") {
  WaylandFixture f("context", true);
  auto plan = f.plan();
  const auto& s = clean_socket(plan);
  CHECK(s.method == Method::kContext);
  CHECK(revocable(s.method));
  const auto& c = step_as<StartContext>(s, 0);
  CHECK(c.wayland());
  CHECK(c.listen_path == kLend + "/wayland-0");
  CHECK(c.source == "/run/user/1000/wayland-0");
  CHECK(c.domain == "vm1");
  CHECK(c.uuid == kUuid);
  CHECK(describe(Step{c}).find("Wayland security context") != std::string::npos);
  // The compositor restricts the VM: the plugin's <reach> is not said, the method note is.
  CHECK(s.reach.empty());
  CHECK(contains(s.method_note, "hides its privileged globals"));
}

TEST_CASE("Wayland context where the compositor offers none: one line, nothing lent") {
  WaylandFixture f("context", false);
  auto plan = f.plan();
  CHECK(plan.sockets.empty());
  REQUIRE(plan.errors.size() == 1);
  CHECK(plan.errors[0].text() ==
        "wayland: method context: the compositor at /run/user/1000/wayland-0 offers no security "
        "context (wp_security_context_manager_v1; weston and Mutter have none) (hint: use "
        "method bind or proxy, which make the VM a full client of it)");
  // bind still works there, and says what the VM reaches.
  WaylandFixture bind("bind", false);
  auto bound = bind.plan();
  CHECK(clean_socket(bound).method == Method::kBind);
  CHECK(contains(clean_socket(bound).reach, "full client of your compositor"));
}

TEST_CASE("Wayland context on a build without the holder: refused in one line") {
  WaylandFixture f("context", true);
  f.in.wayland_context_gap = "method context needs a Wayland security context (built without)";
  auto plan = f.plan();
  REQUIRE(plan.errors.size() == 1);
  CHECK(plan.errors[0].message == *f.in.wayland_context_gap);
  // ... and auto does not pick it.
  WaylandFixture a("", true);
  a.in.wayland_context_gap = "built without";
  CHECK(clean_socket(a.plan()).method == Method::kBind);
}

TEST_CASE("Wayland context where the compositor could not be asked: planned, said") {
  WaylandFixture f("context", std::nullopt);
  auto plan = f.plan();
  const auto& s = clean_socket(plan);
  CHECK(s.method == Method::kContext);
  REQUIRE(s.warnings.size() >= 1);
  CHECK(contains(s.warnings[0].message,
                 "could not ask the compositor at "
                 "/run/user/1000/wayland-0 whether it offers a security "
                 "context (cannot connect to it)"));
}

TEST_CASE("auto picks context for wayland where the compositor offers it and VMs are kept apart") {
  auto plan = WaylandFixture("", true).plan();
  const auto& s = clean_socket(plan);
  CHECK(s.method == Method::kContext);
  CHECK(contains(s.method_note,
                 "auto: context, since the compositor at "
                 "/run/user/1000/wayland-0 offers a security context"));
  CHECK(s.reach.empty());
  CHECK(step_as<StartContext>(s, 0).wayland());
  // No security context: today's choice, and the reach line.
  auto none = WaylandFixture("", false).plan();
  CHECK(clean_socket(none).method == Method::kBind);
  CHECK_FALSE(clean_socket(none).reach.empty());
  // Not asked: today's choice too.
  CHECK(clean_socket(WaylandFixture("", std::nullopt).plan()).method == Method::kBind);
  // With an LSM the context socket is the lend itself: one step, QEMU's socket.
  REQUIRE(s.steps.size() == 1);
  CHECK_FALSE(step_as<StartContext>(s, 0).private_socket());
  CHECK(step_as<StartContext>(s, 0).listen_path == kLend + "/wayland-0");
  CHECK(contains(s.method_note, "context as the lend itself: an LSM keeps each VM to its own"));
  CHECK_FALSE(contains(s.method_note, "behind the proxy"));
}

/// The two steps of a context behind the proxy (S9 and S10 composed), checked.
void check_behind_proxy(const SocketPlan& s, const std::string& server, const std::string& gap) {
  CAPTURE(server);
  CHECK(s.method == Method::kContext);
  CHECK(contains(s.method_note, "context behind the proxy: " + gap +
                                    ", so the context socket is the owner's and only a proxy "
                                    "that serves only this VM's QEMU reaches it"));
  CHECK(s.reach.empty());
  REQUIRE(s.steps.size() == 2);
  const auto& c = step_as<StartContext>(s, 0);
  const auto& p = step_as<StartProxy>(s, 1);
  // The context socket is the owner's, beside the lend; QEMU's user connects to the proxy.
  CHECK(c.private_socket());
  CHECK(c.server.value_or("pipewire") == server);
  CHECK(c.listen_path == s.target + ".context");
  CHECK(c.socket_uid() == 1000);
  CHECK(c.socket_gid() == 1000);
  CHECK(p.listen_path == s.target);
  CHECK(p.source == c.listen_path);
  CHECK(p.context_source());
  CHECK(p.qemu_uid == kQemuUid);
  CHECK(p.peer_domain == "-1:/machine");
  // Nobody is told that every VM's QEMU reaches it: none does.
  CHECK(count_containing(texts(s.warnings), "every VM") == 0);
  auto json = to_json(Step{p});
  CHECK(json["source_fd"] == true);
}

TEST_CASE("Where no LSM keeps VMs apart, a context sits behind the proxy (the walls compose)") {
  const std::string gap = "no AppArmor confines each VM's QEMU here";
  SUBCASE("auto, on a compositor that offers a security context") {
    auto plan = WaylandFixture("", true, gap).plan();
    const auto& s = clean_socket(plan);
    check_behind_proxy(s, "wayland", gap);
    CHECK(
        s.method_note.starts_with("auto: context, since the compositor at "
                                  "/run/user/1000/wayland-0 offers a security context"));
    CHECK(contains(s.method_note, "hides its privileged globals"));
    CHECK(contains(format_plan(plan), "context behind the proxy"));
    CHECK(contains(plan_to_json(plan).dump(), "context behind the proxy"));
  }
  SUBCASE("auto, on one that offers none or was not asked: the proxy alone") {
    for (std::optional<bool> offered : {std::optional<bool>(false), std::optional<bool>()}) {
      auto plan = WaylandFixture("", offered, gap).plan();
      CHECK(clean_socket(plan).method == Method::kProxy);
      CHECK_FALSE(contains(clean_socket(plan).method_note, "context"));
    }
  }
  SUBCASE("method context on a compositor") {
    auto plan = WaylandFixture("context", true, gap).plan();
    check_behind_proxy(clean_socket(plan), "wayland", gap);
  }
  SUBCASE("method context on PipeWire, where the build has it") {
    Fixture f("<s:socket plugin='pipewire' owner='alice' method='context'/>");
    f.in.vm_separation_gap = gap;
    auto plan = f.plan();
    if (context_unavailable()) {
      CHECK(plan.sockets.empty());
    } else {
      const auto& s = clean_socket(plan);
      check_behind_proxy(s, "pipewire", gap);
      CHECK(contains(s.method_note, "WirePlumber's rules"));
    }
  }
}

TEST_CASE("auto never picks context") {
  Fixture f("<s:socket plugin='pipewire' owner='alice'/>");
  f.in.sources["pipewire"] = SourceFacts{true, std::nullopt, std::vector<std::string>{}, {}};
  CHECK(clean_socket(f.plan()).method != Method::kContext);
}

TEST_CASE("An acl lend grants traversal on each directory, then rw on the socket") {
  Fixture f("<s:socket plugin='pulseaudio' owner='alice' method='acl'/>");
  f.in.sources["pulseaudio"] = SourceFacts{
      true,
      std::vector<std::string>{"/run/user/1000/bus", "/run/user/1000/pulse",
                               "/run/user/1000/pulse/native", "/run/user/1000/pulse/pid"},
      std::nullopt,
      {}};
  auto plan = f.plan();
  // QEMU uses the real path; the lend directory holds only the companion files.
  const auto& s = clean_socket(plan);
  CHECK(s.method == Method::kAcl);
  CHECK(s.source == "/run/user/1000/pulse/native");
  CHECK(s.target == "/run/user/1000/pulse/native");
  REQUIRE(s.steps.size() == 6);
  CHECK(std::holds_alternative<VerifySource>(s.steps[0]));
  check_grant(s, 1, "/run/user/1000", "x", true);
  check_grant(s, 2, "/run/user/1000/pulse", "x", true);
  check_grant(s, 3, "/run/user/1000/pulse/native", "rw", false);
  CHECK(s.exposes == std::vector<std::string>{"/run/user/1000/bus", "/run/user/1000/pulse",
                                              "/run/user/1000/pulse/pid"});
  // The cookie and client.conf still go to the domain's lend directory ({files_dir}).
  auto cookie = std::get<CopyFile>(s.steps[4]);
  CHECK(cookie.target == kLend + "/pulse-cookie");
  CHECK(std::get<CopyFile>(s.steps[5]).target == kLend + "/pulse-client.conf");
  CHECK(s.env.at(0).value == "unix:/run/user/1000/pulse/native");
  CHECK(s.env.at(1).value == kLend + "/pulse-cookie");
  CHECK(count_containing(texts(s.warnings), "lets libvirt-qemu traverse /run/user/1000") == 1);
  // AppArmor can keep the original path to no single VM: plan says so, with the rule.
  CHECK(count_containing(texts(s.warnings), "'/run/user/1000/pulse/native rw,'") == 1);
  CHECK(count_containing(texts(s.warnings), "reaches every VM") == 1);
  auto text = format_plan(plan);
  CHECK(contains(text, "also reachable by libvirt-qemu"));
  CHECK(contains(text, "    /run/user/1000/bus\n"));
}

TEST_CASE("An acl lend without source facts says it could not list") {
  auto plan = plan_of("<s:socket plugin='pipewire' owner='alice' method='acl'/>");
  const auto& s = only_socket(plan);
  REQUIRE(s.steps.size() == 3);
  CHECK(std::get<GrantAcl>(s.steps[1]).path == "/run/user/1000");
  CHECK(s.exposes.empty());
  CHECK(count_containing(texts(s.warnings), "could not list /run/user/1000") == 1);
}

TEST_CASE("Where AppArmor decides connect() by path, acl and group refuse and auto binds") {
  // QEMU's profile has no rule for /run/user/...: on a kernel with af_unix mediation the
  // connect would be refused (Debian 13's 6.12 has none: tests/root/aa_confinement.sh).
  for (const char* method : {"acl", "group"}) {
    CAPTURE(method);
    Fixture f(std::string("<s:socket plugin='pipewire' owner='alice' method='") + method + "'/>");
    f.in.apparmor_refuses_original_path = true;
    auto plan = f.plan();
    REQUIRE(plan.errors.size() == 1);
    CHECK(plan.errors[0].message == std::string("cannot lend with method ") + method +
                                        ": it points QEMU at /run/user/1000/pipewire-0, which the "
                                        "kernel's AppArmor profile for this VM does not let QEMU "
                                        "reach, and a rule that did would reach every VM");
    CHECK(plan.errors[0].hint == "use method bind or proxy (auto picks one of them)");
    CHECK(plan.sockets.empty());
  }
  Fixture f("<s:socket plugin='pipewire' owner='alice'/>");
  f.in.apparmor_refuses_original_path = true;
  f.in.sources["pipewire"] = SourceFacts{true, std::nullopt, std::vector<std::string>{}, {}};
  CHECK(only_socket(f.plan()).method == Method::kBind);
}

TEST_CASE("A group lend changes the socket's group to QEMU's") {
  auto plan = plan_of("<s:socket plugin='pipewire' owner='alice' method='group'/>");
  const auto& s = clean_socket(plan, false);
  REQUIRE(s.steps.size() == 3);
  CHECK(std::holds_alternative<VerifySource>(s.steps[0]));
  CHECK(std::get<GrantAcl>(s.steps[1]).path == "/run/user/1000");
  const auto& chgrp = step_as<ChangeGroup>(s, 2);
  CHECK(chgrp.path == "/run/user/1000/pipewire-0");
  CHECK(chgrp.gid == kQemuGid);
  CHECK(s.env.at(0).value == "/run/user/1000");
  CHECK(count_containing(texts(s.warnings),
                         "method group points QEMU at the original path "
                         "/run/user/1000/pipewire-0") == 1);
}

TEST_CASE("a grant that would widen the ACL mask for others: auto proxies, bind/acl/group refuse") {
  const std::vector<std::string> bob{"user:1001:rw-"};
  SUBCASE("auto: proxy, and the note says why") {
    Fixture f("<s:socket plugin='pipewire' owner='alice'/>");
    f.in.sources["pipewire"] = SourceFacts{true, std::nullopt, bob, {}};
    const auto plan = f.plan();  // the socket lives in the plan: keep it
    const auto& s = only_socket(plan);
    CHECK(s.method == Method::kProxy);
    CHECK(contains(s.method_note, "would widen the ACL mask and so also give user:1001:rw-"));
  }
  for (const char* method : {"bind", "acl"}) {
    CAPTURE(method);
    Fixture f(std::string("<s:socket plugin='pipewire' owner='alice' method='") + method + "'/>");
    f.in.sources["pipewire"] = SourceFacts{true, std::nullopt, bob, {}};
    CHECK(texts(f.plan().errors) ==
          std::vector<std::string>{
              "pipewire: cannot add ACL entry u:64055:rw on /run/user/1000/pipewire-0: granting "
              "u:64055:rw- would widen the ACL mask and so also give user:1001:rw- what the mask "
              "now withholds; sockhook never widens what others get (use method proxy)"});
  }
  SUBCASE("group: the directory's x") {
    Fixture f("<s:socket plugin='pipewire' owner='alice' method='group'/>");
    f.in.sources["pipewire"] = SourceFacts{
        true, std::nullopt, std::vector<std::string>{}, {{"/run/user/1000", {"group::r-x"}}}};
    CHECK(count_containing(texts(f.plan().errors),
                           "cannot add ACL entry u:64055:x on /run/user/1000: granting u:64055:--x "
                           "would widen the ACL mask and so also give group::r-x") == 1);
  }
  SUBCASE("nobody gains: bind as usual") {
    Fixture f("<s:socket plugin='pipewire' owner='alice' method='bind'/>");
    f.in.sources["pipewire"] = SourceFacts{true, std::nullopt, std::vector<std::string>{}, {}};
    CHECK(f.plan().errors.empty());
  }
}

TEST_CASE("Where nothing keeps VMs apart, auto picks the proxy and bind says who can reach it") {
  const std::string gap = "no AppArmor confines each VM's QEMU on this kernel";
  SUBCASE("auto: proxy, whatever the socket, and the plan says why") {
    for (std::optional<bool> exists :
         {std::optional<bool>(true), std::optional<bool>(false), std::optional<bool>()}) {
      Fixture f("<s:socket plugin='pipewire' owner='alice'/>");
      f.in.vm_separation_gap = gap;
      if (exists) f.in.sources["pipewire"] = SourceFacts{*exists, std::nullopt, std::nullopt, {}};
      const auto plan = f.plan();
      const auto& s = only_socket(plan);
      CHECK(s.method == Method::kProxy);
      CHECK(s.method_note.starts_with("auto: proxy, which serves only this VM's QEMU: " + gap +
                                      ", so a bind lend would reach every VM's QEMU; "));
      CHECK(s.method_note.ends_with(!exists   ? "could not look at the socket now"
                                    : *exists ? "the socket exists now"
                                              : "the socket does not exist yet (the proxy "
                                                "connects when it does)"));
      REQUIRE(s.steps.size() == 1);
      CHECK(std::holds_alternative<StartProxy>(s.steps[0]));
    }
  }
  SUBCASE("bind, acl and group stay available, with one line saying every VM reaches them") {
    for (const char* method : {"bind", "acl", "group"}) {
      CAPTURE(method);
      Fixture f(std::string("<s:socket plugin='pipewire' owner='alice' method='") + method + "'/>");
      f.in.vm_separation_gap = gap;
      const auto plan = f.plan();
      CHECK(plan.errors.empty());
      CHECK(count_containing(texts(only_socket(plan).warnings),
                             "every VM's QEMU can reach this lend, not only this VM's: " + gap) ==
            1);
    }
  }
  SUBCASE("proxy: no such line") {
    Fixture f("<s:socket plugin='pipewire' owner='alice' method='proxy'/>");
    f.in.vm_separation_gap = gap;
    CHECK(count_containing(texts(only_socket(f.plan()).warnings), "every VM") == 0);
  }
}

TEST_CASE("The proxy step names the domain whose QEMU alone it serves") {
  Fixture f("<s:socket plugin='pipewire' owner='alice' method='proxy'/>");
  SUBCASE("a running domain: its id and partition") {
    f.domain.id = 5;
    f.domain.partition = "/machine/gaming";
    auto proxy = step_as<StartProxy>(only_socket(f.plan()), 0);
    CHECK(proxy.peer_domain == "5:/machine/gaming");
    CHECK(describe(Step{proxy})
              .ends_with("serving only uid 64055 in cgroup "
                         "/machine/gaming.partition/qemu-5[-*].libvirt-qemu or "
                         "/machine.slice/machine-gaming.slice/machine-qemu\\x2d5[\\x2d*].scope"));
  }
  SUBCASE("a domain that does not run: the id libvirt gives at start") {
    auto proxy = step_as<StartProxy>(only_socket(f.plan()), 0);
    CHECK(proxy.peer_domain == "-1:/machine");
    CHECK(describe(Step{proxy}).ends_with("(<id>: libvirt's at start)"));
  }
}

TEST_CASE("auto chooses bind or proxy from what is known about the source") {
  Fixture f("<s:socket plugin='pipewire' owner='alice'/>");
  for (bool exists : {true, false}) {
    CAPTURE(exists);
    f.in.sources["pipewire"] = SourceFacts{exists, std::nullopt, std::nullopt, {}};
    const auto plan = f.plan();
    const auto& s = only_socket(plan);
    if (exists) {
      CHECK(s.method == Method::kBind);
      CHECK(s.method_note == "auto: the socket exists, so bind");
      CHECK(std::holds_alternative<BindMount>(s.steps.at(2)));
    } else {
      CHECK(s.method == Method::kProxy);
      CHECK(s.method_note == "auto: the socket does not exist yet, so proxy");
      REQUIRE(s.steps.size() == 1);
      CHECK(std::holds_alternative<StartProxy>(s.steps[0]));
    }
  }
  f.in.sources.clear();
  SUBCASE("unknown: planned as bind, with a note") {
    const auto plan = f.plan();
    const auto& s = only_socket(plan);
    CHECK(s.method == Method::kBind);
    CHECK(contains(s.method_note, "could not look now; planned as bind"));
  }
  SUBCASE("facts are looked up by socket name, not plugin") {
    f.in.sources["other"] = SourceFacts{false, std::nullopt, std::nullopt, {}};
    const auto plan = f.plan();
    CHECK(only_socket(plan).method == Method::kBind);
  }
}

TEST_CASE("The environment QEMU needs is checked against the domain XML") {
  const std::string pw = "<s:socket plugin='pipewire' owner='alice' method='bind'/>";
  SUBCASE("provided by qemu:env") {
    auto plan = plan_of(pw, qemu_env("PIPEWIRE_RUNTIME_DIR", kLend));
    const auto& s = only_socket(plan);
    REQUIRE(s.env.size() == 1);
    CHECK(s.env[0].provided);
    CHECK(s.env[0].provided_by == "qemu:env");
    CHECK(s.warnings.empty());
    CHECK(contains(format_plan(plan), "(provided by qemu:env)"));
  }
  SUBCASE("provided by a native <audio> attribute") {
    auto plan = plan_of("<s:socket plugin='pulseaudio' owner='alice' method='bind'/>",
                        "<devices><audio id='1' type='pulseaudio' serverName='unix:" + kLend +
                            "/pulse-native'/></devices>" +
                            qemu_env("PULSE_COOKIE", kLend + "/pulse-cookie") +
                            qemu_env("PULSE_CLIENTCONFIG", kLend + "/pulse-client.conf"));
    const auto& s = only_socket(plan);
    REQUIRE(s.env.size() == 3);
    for (const auto& e : s.env) CHECK_MESSAGE(e.provided, e.name);
    CHECK(s.env[0].provided_by == "<audio type='pulseaudio' serverName=...>");
    CHECK(s.warnings.empty());
  }
  SUBCASE("a native attribute of another audio type does not count") {
    auto plan = plan_of("<s:socket plugin='pulseaudio' owner='alice' method='bind'/>",
                        "<devices><audio id='1' type='jack' serverName='unix:" + kLend +
                            "/pulse-native'/></devices>");
    CHECK_FALSE(only_socket(plan).env.at(0).provided);
  }
  SUBCASE("missing") {
    auto plan = plan_of(pw);
    const auto& s = only_socket(plan);
    CHECK_FALSE(s.env.at(0).provided);
    CHECK(only_text(s.warnings) ==
          "the domain XML does not give QEMU PIPEWIRE_RUNTIME_DIR=" + kLend +
              " (hint: sockhook annotate vm1 --plugin pipewire --owner alice)");
    CHECK(contains(format_plan(plan), "(MISSING from the domain XML)"));
  }
  SUBCASE("set to another value: exactly one warning") {
    auto plan = plan_of(pw, qemu_env("PIPEWIRE_RUNTIME_DIR", "/run/user/1000"));
    const auto& s = only_socket(plan);
    CHECK_FALSE(s.env.at(0).provided);
    CHECK(only_text(s.warnings) ==
          "the domain sets PIPEWIRE_RUNTIME_DIR=/run/user/1000 but this lend "
          "needs PIPEWIRE_RUNTIME_DIR=" +
              kLend);
  }
}

TEST_CASE("Socket-level problems fail the plan with one line naming the socket") {
  SUBCASE("an unknown plugin") {
    auto plan = plan_of("<s:socket plugin='nope' owner='alice'/>");
    CHECK(texts(plan.errors) ==
          std::vector<std::string>{"nope: no plugin named 'nope' is installed"});
    check_executes_nothing(plan);
    CHECK(plan.failed());
  }
  SUBCASE("a refused plugin gives the refusal's reason") {
    Fixture f("<s:socket plugin='wayland' owner='alice'/>");
    f.plugins.plugins.erase("wayland");
    f.plugins.refused["wayland"] =
        "plugin file /etc/sockhook/plugins/wayland.xml is refused: it is writable by others";
    auto plan = f.plan();
    CHECK(texts(plan.errors) ==
          std::vector<std::string>{"wayland: plugin file /etc/sockhook/plugins/wayland.xml is "
                                   "refused: it is writable by others"});
  }
  SUBCASE("an unknown owner") {
    CHECK(texts(plan_of("<s:socket plugin='pipewire' owner='ghost'/>").errors) ==
          std::vector<std::string>{"pipewire: owner 'ghost' is not a user on this host"});
  }
  SUBCASE("an owner missing from the gathered map counts as unknown") {
    CHECK(texts(plan_of("<s:socket plugin='pipewire' owner='bob'/>").errors) ==
          std::vector<std::string>{"pipewire: owner 'bob' is not a user on this host"});
  }
  SUBCASE("root, by name or by uid") {
    Fixture f(
        "<s:socket plugin='pipewire' owner='root'/>"
        "<s:socket name='b' plugin='wayland' owner='0'/>");
    f.policy.allow(kUuid, "root", "*");
    CHECK(texts(f.plan().errors) ==
          std::vector<std::string>{
              "pipewire: owner 'root' is root; sockhook lends only regular users' sockets",
              "b: owner '0' is root; sockhook lends only regular users' sockets"});
  }
  SUBCASE("a system user, below or above the login range") {
    for (auto [owner, uid] : {std::pair{"sys", "100"}, std::pair{"nobody", "65534"}}) {
      CAPTURE(owner);
      Fixture f(std::string("<s:socket plugin='pipewire' owner='") + owner + "'/>");
      f.policy.allow(kUuid, owner, "*");
      CHECK(texts(f.plan().errors) ==
            std::vector<std::string>{"pipewire: owner '" + std::string(owner) + "' (uid " + uid +
                                     ") is a system user; regular users have uids 1000 to 60000 "
                                     "(UID_MIN, UID_MAX of login.defs)"});
    }
  }
  SUBCASE("the policy does not allow it") {
    Fixture f("<s:socket plugin='pipewire' owner='alice'/>");
    f.allow_only("alice", "wayland");
    auto plan = f.plan();
    CHECK(texts(plan.errors) ==
          std::vector<std::string>{
              "pipewire: the policy does not allow alice to lend 'pipewire' to this domain "
              "(hint: sockhook policy allow --domain " +
              kUuid + " --owner alice --plugin pipewire)"});
    CHECK(plan.sockets.empty());
  }
  SUBCASE("the policy allows by uid") {
    Fixture f("<s:socket plugin='pipewire' owner='alice'/>");
    f.allow_only("1000", "pipewire");
    CHECK(f.plan().errors.empty());
  }
  SUBCASE("two sockets on one target") {
    auto plan = plan_of(
        "<s:socket plugin='pipewire' owner='alice' method='bind'/>"
        "<s:socket plugin='jack' owner='alice' method='bind'/>");
    CHECK(texts(plan.errors) ==
          std::vector<std::string>{"jack: its target " + kLend +
                                   "/pipewire-0 is already used by socket 'pipewire'"});
    CHECK(plan.sockets.size() == 1);
  }
  SUBCASE("two acl lends of the same socket") {
    auto plan = plan_of(
        "<s:socket plugin='pipewire' owner='alice' method='acl'/>"
        "<s:socket plugin='jack' owner='alice' method='group'/>");
    CHECK(only_text(plan.errors)
              .starts_with("jack: its target /run/user/1000/pipewire-0 is already used"));
  }
  SUBCASE("acl with an absolute admin socket path") {
    Fixture f("<s:socket plugin='abs' owner='alice' method='acl'/>");
    auto p = parse_plugin("<plugin name='abs'><socket path='/run/abs/s' target='s'/></plugin>",
                          true, "/etc/sockhook/plugins/abs.xml");
    f.plugins.plugins.emplace("abs", p);
    CHECK(texts(f.plan().errors) ==
          std::vector<std::string>{
              "abs: methods acl and group need a socket in the runtime directory"});
  }
  SUBCASE("every failing socket is reported, not just the first") {
    CHECK(
        plan_of("<s:socket plugin='nope' owner='alice'/><s:socket plugin='pipewire' owner='root'/>"
                "<s:socket plugin='wayland' owner='ghost'/>")
            .errors.size() == 3);
  }
}

TEST_CASE("An admin plugin with an absolute path binds from that path") {
  Fixture f("<s:socket plugin='abs' owner='alice' method='bind'/>");
  f.plugins.plugins.emplace(
      "abs", parse_plugin("<plugin name='abs'><socket path='/run/abs/s' target='abs-0'/></plugin>",
                          true, "/etc/sockhook/plugins/abs.xml"));
  auto plan = f.plan();
  CHECK(plan.errors.empty());
  const auto& s = only_socket(plan);
  CHECK(s.source == "/run/abs/s");
  auto verify = std::get<VerifySource>(s.steps.at(0));
  CHECK(verify.runtime_dir == "/");
  CHECK(verify.relative == "run/abs/s");
}

TEST_CASE("Failures of optional sockets become warnings") {
  Fixture f(
      "<s:socket plugin='nope' owner='alice' required='no'/>"
      "<s:socket plugin='wayland' owner='root' required='no'/>"
      "<s:socket plugin='pipewire' owner='alice' method='x' required='no'/>"
      "<s:socket plugin='pulseaudio' owner='alice' method='bind'/>");
  f.policy.allow(kUuid, "root", "*");
  auto plan = f.plan();
  CHECK(plan.errors.empty());
  CHECK_FALSE(plan.failed());
  REQUIRE(plan.sockets.size() == 1);
  CHECK(plan.sockets[0].request.plugin == "pulseaudio");
  CHECK(count_containing(texts(plan.warnings), "(optional socket skipped)") == 3);
  CHECK(count_containing(texts(plan.warnings),
                         "nope: no plugin named 'nope' is installed (optional socket skipped)") ==
        1);
  CHECK(count_containing(texts(plan.warnings), "pipewire: method='x'") == 1);
}

TEST_CASE("Metadata warnings are carried into the plan") {
  auto plan = plan_of("<s:socket plugin='pipewire' owner='alice' colour='red'/>");
  CHECK(plan.errors.empty());
  CHECK(texts(plan.warnings) ==
        std::vector<std::string>{"pipewire: ignoring unknown attribute 'colour'"});
}

TEST_CASE("Domain-level errors stop planning before any socket") {
  SUBCASE("no UUID") {
    auto plan = plan_of("<s:socket plugin='pipewire' owner='alice'/>", "", "");
    CHECK(texts(plan.errors) ==
          std::vector<std::string>{"the domain has no <uuid>; lends are keyed by UUID"});
    check_executes_nothing(plan);
    CHECK(plan.lend_dir.empty());
  }
  SUBCASE("a socket error plus a domain error") {
    auto plan = plan_of("<s:socket plugin='pipewire' owner='alice' method='x'/>", "", "not-a-uuid");
    CHECK(plan.errors.size() == 2);
    CHECK(plan.sockets.empty());
  }
}

TEST_CASE("A domain with metadata but no sockets plans nothing") {
  auto plan = plan_of("");
  CHECK_FALSE(plan.failed());
  check_executes_nothing(plan);
  CHECK(contains(format_plan(plan), "nothing to lend"));
}

TEST_CASE("format_plan and plan_to_json show the concrete paths") {
  auto plan = plan_of(
      "<s:socket plugin='pulseaudio' owner='alice' method='bind'/>"
      "<s:socket plugin='wayland' owner='alice' method='proxy' required='no'/>");
  REQUIRE(plan.errors.empty());
  auto text = format_plan(plan);
  CHECK(contains(text, "domain vm1 (uuid " + kUuid + ")\n"));
  CHECK(contains(text,
                 "QEMU runs as libvirt-qemu:libvirt-qemu (uid 64055, gid 64055, from default)"));
  CHECK(contains(text, "  1. create lend directory " + kLend));
  CHECK(contains(text,
                 "socket pulseaudio: plugin pulseaudio, owner alice (uid 1000), method bind, "
                 "required\n"));
  CHECK(contains(text,
                 "socket wayland: plugin wayland, owner alice (uid 1000), method proxy, "
                 "optional\n"));
  CHECK(contains(text,
                 "  source /run/user/1000/pulse/native\n  target " + kLend + "/pulse-native\n"));
  CHECK(contains(text, "bind-mount the verified inode of /run/user/1000/pulse/native onto " +
                           kLend + "/pulse-native"));
  CHECK(contains(text, "PULSE_SERVER=unix:" + kLend + "/pulse-native"));
  CHECK(contains(text, "listen on " + kLend + "/wayland-0"));
  // Revocability is the method's (issue 22): bind cannot be taken back, the proxy can.
  CHECK(contains(text, "method bind, required\n  revocable: no (a descriptor QEMU keeps"));
  CHECK(contains(text, "method proxy, optional\n  revocable: yes (release stops the proxy"));
  CHECK(contains(text, "  warning: the domain XML does not give QEMU WAYLAND_DISPLAY="));

  auto j = plan_to_json(plan);
  check_members(j, {{"domain", "vm1"}, {"uuid", kUuid}, {"lend_dir", kLend}});
  CHECK(j["qemu"]["uid"] == 64055);
  REQUIRE(j["steps"].size() == 1);
  CHECK(j["steps"][0]["action"] == "make_lend_dir");
  REQUIRE(j["sockets"].size() == 2);
  auto pa = j["sockets"][0];
  check_members(pa, {{"name", "pulseaudio"},
                     {"method", "bind"},
                     {"revocable", false},
                     {"required", true},
                     {"source", "/run/user/1000/pulse/native"},
                     {"target", kLend + "/pulse-native"}});
  REQUIRE(pa["steps"].size() == 6);
  check_members(pa["steps"][0], {{"action", "verify_source"}, {"relative", "pulse/native"}});
  check_members(pa["steps"][2], {{"action", "bind_mount"}});
  check_members(pa["steps"][3], {{"action", "grant_acl"}, {"perms", "rw"}});
  check_members(
      pa["steps"][4],
      {{"action", "copy_file"}, {"base", "/home/alice"}, {"relative", ".config/pulse/cookie"}});
  check_members(pa["steps"][5], {{"content", "enable-shm = no\n"}});
  check_members(pa["env"][0], {{"name", "PULSE_SERVER"},
                               {"value", "unix:" + kLend + "/pulse-native"},
                               {"provided", false}});
  auto wl = j["sockets"][1];
  CHECK(wl["required"] == false);
  CHECK(wl["revocable"] == true);
  check_members(wl["steps"][0], {{"action", "start_proxy"},
                                 {"listen", kLend + "/wayland-0"},
                                 {"source", "/run/user/1000/wayland-0"}});
}

TEST_CASE("Errors appear in format_plan and plan_to_json") {
  auto plan = plan_of("<s:socket plugin='nope' owner='alice'/>");
  CHECK(contains(format_plan(plan), "error: nope: no plugin named 'nope' is installed\n"));
  auto j = plan_to_json(plan);
  REQUIRE(j["errors"].size() == 1);
  CHECK(j["errors"][0] == "nope: no plugin named 'nope' is installed");
}

TEST_CASE("Paths can be relocated for tests") {
  Fixture f("<s:socket plugin='pipewire' owner='alice' method='bind'/>");
  f.in.paths.lend_root = "/tmp/lend";
  f.in.paths.user_runtime_root = "/tmp/user";
  auto plan = f.plan();
  const auto& s = only_socket(plan);
  CHECK(plan.lend_dir == "/tmp/lend/libvirt-" + kUuid);
  CHECK(s.source == "/tmp/user/1000/pipewire-0");
  CHECK(std::get<VerifySource>(s.steps.at(0)).runtime_dir == "/tmp/user/1000");
}

/// What gather saw at a candidate: the owner's socket or not, listening or not (nullopt:
/// unknown), made at `mtime`.
CandidateFacts seen(const std::string& path, bool owned, std::optional<bool> listening,
                    long long mtime = 0) {
  return {path, owned, listening, mtime};
}

TEST_CASE("choose_candidate finds the owner's live compositor and says why") {
  const std::vector<std::string> paths{"wayland-0", "wayland-1"};
  auto choose = [&](std::vector<CandidateFacts> facts) {
    return choose_candidate(paths, facts, "alice");
  };
  SUBCASE("sway or Hyprland: only wayland-1 exists") {
    auto c = choose({seen("wayland-0", false, false), seen("wayland-1", true, true)});
    CHECK(c.path == "wayland-1");
    CHECK(c.note == "wayland-1 is the only one of wayland-0, wayland-1 that is alice's socket");
  }
  SUBCASE("GNOME, KDE or weston: only wayland-0 exists") {
    auto c = choose({seen("wayland-0", true, true), seen("wayland-1", false, false)});
    CHECK(c.path == "wayland-0");
  }
  SUBCASE("a compositor nested later takes the free name: the older one is the session's") {
    // On sway (wayland-1) a nested weston takes wayland-0; on GNOME it would take wayland-1.
    auto c = choose({seen("wayland-0", true, true, 200), seen("wayland-1", true, true, 100)});
    CHECK(c.path == "wayland-1");
    CHECK(c.note ==
          "wayland-1 is the oldest of alice's listening sockets wayland-0, wayland-1 (one made "
          "later is usually a compositor nested in it)");
    CHECK(choose({seen("wayland-0", true, true, 100), seen("wayland-1", true, true, 200)}).path ==
          "wayland-0");
    // Made at the same moment: the plugin's order.
    CHECK(choose({seen("wayland-0", true, true, 5), seen("wayland-1", true, true, 5)}).path ==
          "wayland-0");
  }
  SUBCASE("a socket nobody listens on is left over from a compositor that exited") {
    auto c = choose({seen("wayland-0", true, false, 1), seen("wayland-1", true, true, 9)});
    CHECK(c.path == "wayland-1");
    CHECK(c.note ==
          "wayland-1 is the only one of wayland-0, wayland-1 where alice's server listens; "
          "nothing listens on wayland-0 (left over)");
  }
  SUBCASE("nothing listens anywhere: the oldest socket, as a single path would be bound") {
    auto c = choose({seen("wayland-0", true, false, 9), seen("wayland-1", true, false, 1)});
    CHECK(c.path == "wayland-1");
    CHECK(contains(c.note, "; nothing listens on any of them now"));
  }
  SUBCASE("unknown listeners count as live") {
    auto c = choose({seen("wayland-0", true, std::nullopt, 9), seen("wayland-1", false, {})});
    CHECK(c.path == "wayland-0");
  }
  SUBCASE("a socket of someone else's is not the owner's compositor") {
    auto c = choose({seen("wayland-0", false, true), seen("wayland-1", false, true)});
    CHECK(c.path == "wayland-0");
    CHECK(c.note ==
          "none of wayland-0, wayland-1 is alice's socket now; planned as wayland-0, the first "
          "listed");
  }
  SUBCASE("nobody could look (plan without rights): the first, and how to see more") {
    auto c = choose({});
    CHECK(c.path == "wayland-0");
    CHECK(c.note ==
          "could not look for wayland-0, wayland-1 (run as root or as alice); planned as "
          "wayland-0, the first listed");
  }
}

TEST_CASE("The wayland lend reaches the compositor the owner runs, and plan says which") {
  Fixture f("<s:socket plugin='wayland' owner='alice' method='bind'/>");
  SourceFacts facts;
  facts.exists = true;
  facts.socket_gains = std::vector<std::string>{};
  facts.candidates = {seen("wayland-0", false, false), seen("wayland-1", true, true)};
  f.in.sources["wayland"] = facts;
  auto plan = f.plan();
  const auto& s = clean_socket(plan);
  CHECK(s.source == "/run/user/1000/wayland-1");
  CHECK(s.target == kLend + "/wayland-0");  // QEMU's name stays: WAYLAND_DISPLAY={target}
  CHECK(step_as<VerifySource>(s, 0).relative == "wayland-1");
  CHECK(step_as<BindMount>(s, 2).source == "/run/user/1000/wayland-1");
  auto text = format_plan(plan);
  CHECK(contains(text,
                 "  found wayland-1 is the only one of wayland-0, wayland-1 that is alice's "
                 "socket\n"));
  CHECK(contains(text, "  source /run/user/1000/wayland-1\n"));
  auto j = plan_to_json(plan);
  CHECK(j["sockets"][0]["source"] == "/run/user/1000/wayland-1");
  CHECK(j["sockets"][0]["source_note"] == s.source_note);

  SUBCASE("acl points QEMU at the found socket itself") {
    Fixture a("<s:socket plugin='wayland' owner='alice' method='acl'/>");
    a.in.sources["wayland"] = facts;
    auto acl_plan = a.plan();
    const auto& sa = only_socket(acl_plan);
    CHECK(sa.source == "/run/user/1000/wayland-1");
    CHECK(sa.target == "/run/user/1000/wayland-1");
  }
  SUBCASE("a proxy connects to the found socket") {
    Fixture p("<s:socket plugin='wayland' owner='alice' method='proxy'/>");
    p.in.sources["wayland"] = facts;
    CHECK(step_as<StartProxy>(only_socket(p.plan()), 0).source == "/run/user/1000/wayland-1");
  }
  SUBCASE("a plugin with one path says nothing about finding it") {
    CHECK(only_socket(plan_of("<s:socket plugin='pipewire' owner='alice' method='bind'/>"))
              .source_note.empty());
  }
}

TEST_CASE("Each shipped plugin's lend says what the VM can reach that the server allows") {
  const std::pair<const char*, const char*> cases[] = {
      {"pipewire", "this VM can also record your microphone"},
      {"jack", "this VM can also record your microphone"},
      {"wayland", "this VM is a full client of your compositor"},
      {"pulseaudio", "PulseAudio checks only who connects, never what a client does"},
  };
  for (const auto& [plugin, start] : cases) {
    CAPTURE(plugin);
    auto plan = plan_of(std::string("<s:socket plugin='") + plugin + "' owner='alice'/>");
    const auto& s = only_socket(plan);
    REQUIRE(s.reach.starts_with(start));
    CHECK(s.reach.find('\n') == std::string::npos);  // one line, whatever the XML's breaks
    CHECK(s.reach.find("  ") == std::string::npos);
    // plan: one line under the socket; --json: the same text.
    CHECK(contains(format_plan(plan),
                   "\n  " + std::string(plugin) + ": unrestricted: " + s.reach + "\n"));
    CHECK(plan_to_json(plan)["sockets"][0]["reach"] == s.reach);
  }
  SUBCASE("where a socket is refused, nothing is lent and nothing is said about reach") {
    auto plan = plan_of("<s:socket plugin='wayland' owner='root'/>");
    CHECK(plan.sockets.empty());
    CHECK_FALSE(contains(format_plan(plan), "unrestricted"));
  }
}

}  // namespace
}  // namespace sockhook
