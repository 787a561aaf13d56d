#include "plan/gather.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include "test_files.hpp"

namespace sockhook {
namespace {

/// The user running the tests, by name: whoever it is, gather must find the same uid.
std::string own_user_name() {
  const passwd* pw = ::getpwuid(::geteuid());
  REQUIRE(pw != nullptr);
  return pw->pw_name;
}

/// A host in a temporary directory: the runtime root, one plugin directory, qemu.conf naming
/// the test's own uid and gid, and no policy file. Nothing outside the directory is read,
/// except the user database for the test's own user.
struct FakeHost {
  TempDir root;
  GatherOptions options;
  std::filesystem::path runtime_dir;

  FakeHost() {
    std::filesystem::create_directory(root.path / "plugins");
    root.write("plugins/snd.xml",
               "<plugin name='snd' summary='test'><socket path='sub/snd-0' target='snd-0'/>"
               "</plugin>");
    root.write("qemu.conf", "user = \"+" + std::to_string(::geteuid()) + "\"\ngroup = \"+" +
                                std::to_string(::getegid()) + "\"\n");
    runtime_dir = root.path / "user" / std::to_string(::geteuid());
    std::filesystem::create_directories(runtime_dir / "sub");
    options.plugin_dirs = {{(root.path / "plugins").string(), false}};
    options.trusted_uids = {::geteuid()};
    options.policy_path = (root.path / "policy.conf").string();
    options.qemu_conf_path = (root.path / "qemu.conf").string();
    options.paths.user_runtime_root = (root.path / "user").string();
    // These tests are about probing, with no policy file: `plan`'s review mode.
    options.probe_unallowed = true;
  }

  /// Gathers for a domain with one socket per (name, plugin, owner).
  void gather_for(Gathered& g,
                  const std::vector<std::tuple<std::string, std::string, std::string>>& sockets) {
    g.domain.name = "vm";
    g.domain.uuid = "11111111-2222-3333-4444-555555555555";
    for (const auto& [name, plugin, owner] : sockets) {
      auto& req = g.domain.sockets.emplace_back();
      std::tie(req.name, req.plugin, req.owner) = std::tie(name, plugin, owner);
    }
    gather(g, options);
  }
};

}  // namespace

TEST_CASE("gather reads plugins, owners, QEMU's identity and the relocated paths") {
  FakeHost host;
  auto me = own_user_name();
  Gathered g;
  host.gather_for(g, {{"snd", "snd", me}});
  const auto& in = g.inputs;
  CHECK(in.domain == &g.domain);
  CHECK(in.plugins == &g.plugins);
  CHECK(in.policy == &g.policy);
  REQUIRE(g.plugins.find("snd") != nullptr);
  CHECK(g.plugins.find("snd")->socket_path == "sub/snd-0");
  CHECK(in.paths.user_runtime_root == host.options.paths.user_runtime_root);
  CHECK(in.qemu.uid == ::geteuid());
  CHECK(in.qemu.gid == ::getegid());
  CHECK(in.qemu.source == "qemu.conf");
  REQUIRE(in.owners.count(me) == 1);
  REQUIRE(in.owners.at(me).has_value());
  CHECK(in.owners.at(me)->uid == ::geteuid());
}

TEST_CASE("gather probes each source beneath the relocated runtime directory") {
  FakeHost host;
  auto me = own_user_name();
  SUBCASE("a socket that exists, with what lies beside it on the way down") {
    auto sock = bound_socket(host.runtime_dir / "sub" / "snd-0");
    host.root.write("user/" + std::to_string(::geteuid()) + "/other", "x");
    Gathered g;
    host.gather_for(g, {{"snd", "snd", me}});
    REQUIRE(g.inputs.sources.count("snd") == 1);
    const auto& facts = g.inputs.sources.at("snd");
    CHECK(facts.exists == std::optional<bool>(true));
    REQUIRE(facts.nearby.has_value());
    auto nearby = *facts.nearby;
    std::sort(nearby.begin(), nearby.end());
    auto dir = host.runtime_dir.string();
    CHECK(nearby == std::vector<std::string>{dir + "/other", dir + "/sub", dir + "/sub/snd-0"});
  }
  SUBCASE("a missing socket is known to be missing") {
    Gathered g;
    host.gather_for(g, {{"snd", "snd", me}});
    REQUIRE(g.inputs.sources.count("snd") == 1);
    CHECK(g.inputs.sources.at("snd").exists == std::optional<bool>(false));
  }
  SUBCASE("a regular file in the socket's place is not a source") {
    host.root.write("user/" + std::to_string(::geteuid()) + "/sub/snd-0", "x");
    Gathered g;
    host.gather_for(g, {{"snd", "snd", me}});
    CHECK(g.inputs.sources.at("snd").exists == std::optional<bool>(false));
  }
  SUBCASE("a symlinked directory on the way is not followed (issue 22)") {
    // The owner points sub/ at a directory they may not read: the probe must not say
    // whether a socket lies there, nor list it.
    std::filesystem::create_directory(host.root.path / "elsewhere");
    auto sock = bound_socket(host.root.path / "elsewhere" / "snd-0");
    std::filesystem::remove(host.runtime_dir / "sub");
    std::filesystem::create_directory_symlink(host.root.path / "elsewhere",
                                              host.runtime_dir / "sub");
    Gathered g;
    host.gather_for(g, {{"snd", "snd", me}});
    const auto& facts = g.inputs.sources.at("snd");
    CHECK_FALSE(facts.exists.has_value());
    REQUIRE(facts.nearby.has_value());
    CHECK(*facts.nearby == std::vector<std::string>{host.runtime_dir.string() + "/sub"});
  }
  SUBCASE("a listing is bounded, and says that it is (issue 22)") {
    for (int i = 0; i < 300; ++i)
      host.root.write("user/" + std::to_string(::geteuid()) + "/f" + std::to_string(i), "");
    Gathered g;
    host.gather_for(g, {{"snd", "snd", me}});
    const auto& facts = g.inputs.sources.at("snd");
    REQUIRE(facts.nearby.has_value());
    CHECK(facts.nearby->size() == 256);  // the runtime directory's first 256; sub/ is empty
    CHECK(facts.unlisted_dirs == std::vector<std::string>{host.runtime_dir.string()});
  }
  SUBCASE("a missing runtime directory means: could not look") {
    std::filesystem::remove_all(host.runtime_dir);
    Gathered g;
    host.gather_for(g, {{"snd", "snd", me}});
    REQUIRE(g.inputs.sources.count("snd") == 1);
    CHECK_FALSE(g.inputs.sources.at("snd").exists.has_value());
    CHECK_FALSE(g.inputs.sources.at("snd").nearby.has_value());
  }
  SUBCASE("without probing, no source is looked at") {
    auto sock = bound_socket(host.runtime_dir / "sub" / "snd-0");
    host.options.probe_sources = false;
    Gathered g;
    host.gather_for(g, {{"snd", "snd", me}});
    CHECK(g.inputs.sources.empty());
  }
}

TEST_CASE("The hook's gather looks only at the sources the policy allows") {
  FakeHost host;
  host.options.probe_unallowed = false;
  auto me = own_user_name();
  auto sock = bound_socket(host.runtime_dir / "sub" / "snd-0");
  auto gather_with = [&](bool allowed) {
    Gathered g;
    g.domain.uuid = "11111111-2222-3333-4444-555555555555";
    auto& req = g.domain.sockets.emplace_back();
    std::tie(req.name, req.plugin, req.owner) = std::tie("snd", "snd", me);
    load_rules(g, host.options);
    if (allowed) g.policy.allow(g.domain.uuid, me, "snd");
    gather_host(g, host.options);
    return g.inputs.sources;
  };
  CHECK(gather_with(false).empty());
  auto sources = gather_with(true);
  REQUIRE(sources.count("snd") == 1);
  CHECK(sources.at("snd").exists == std::optional<bool>(true));
}

TEST_CASE("The policy gate refuses in one line, naming the policy and the first socket") {
  FakeHost host;
  auto me = own_user_name();
  Gathered g;
  g.domain.uuid = "11111111-2222-3333-4444-555555555555";
  auto add = [&](const char* name, bool required) {
    auto& req = g.domain.sockets.emplace_back();
    std::tie(req.name, req.plugin, req.owner, req.required) = std::tie(name, "snd", me, required);
  };
  load_rules(g, host.options);
  SUBCASE("nothing to lend: the policy allows nothing") {
    auto refusal = policy_refusal(g);
    REQUIRE(refusal);
    CHECK(refusal->text() == "the policy allows nothing for this domain");
  }
  SUBCASE("a required socket is named first, the others counted") {
    add("opt", false);
    add("req", true);
    add("opt2", false);
    auto refusal = policy_refusal(g);
    REQUIRE(refusal);
    CHECK(refusal->text() == "req: the policy does not allow " + me +
                                 " to lend 'snd' to this domain (nor any of its 2 other sockets) "
                                 "(hint: sockhook policy allow --domain " +
                                 g.domain.uuid + " --owner " + me + " --plugin snd)");
  }
  SUBCASE("any allowance for the domain opens the gate; the plan judges each socket") {
    add("req", true);
    g.policy.allow(g.domain.uuid, "someone-else", "other");
    CHECK_FALSE(policy_refusal(g));
  }
  SUBCASE("a domain-level error of the XML is the line: no policy could allow it") {
    add("req", true);
    g.domain.diagnostics.push_back(
        {"", "the domain has no <uuid>; lends are keyed by UUID", true, true});
    auto refusal = policy_refusal(g);
    REQUIRE(refusal);
    CHECK(refusal->text() == "the domain has no <uuid>; lends are keyed by UUID");
  }
  SUBCASE("an allowance for another domain does not") {
    add("req", true);
    g.policy.allow("99999999-2222-3333-4444-555555555555", me, "*");
    CHECK(policy_refusal(g));
  }
}

TEST_CASE("gather leaves unknown plugins and owners to the planner") {
  FakeHost host;
  auto me = own_user_name();
  Gathered g;
  host.gather_for(g, {{"a", "nosuch", me}, {"b", "snd", "no-such-user-sockhook"}});
  // Neither is an exception: the planner turns both into a problem of that socket.
  CHECK(g.plugins.find("nosuch") == nullptr);
  REQUIRE(g.inputs.owners.count("no-such-user-sockhook") == 1);
  CHECK_FALSE(g.inputs.owners.at("no-such-user-sockhook").has_value());
  CHECK(g.inputs.sources.empty());
}

TEST_CASE("gather finds the owner's live socket among a plugin's candidates") {
  FakeHost host;
  host.root.write("plugins/disp.xml",
                  "<plugin name='disp'><socket path='disp-0' target='disp-0'>"
                  "<candidate path='disp-1'/></socket></plugin>");
  auto me = own_user_name();
  auto run = host.runtime_dir;
  // Sets the socket's mtime, which says when its server made it.
  auto made_at = [&](const std::string& name, time_t when) {
    const timespec times[2] = {{when, 0}, {when, 0}};
    REQUIRE(::utimensat(AT_FDCWD, (run / name).c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
  };
  // The planner's choice from what gather saw (the test's owner may be root, whom the
  // planner refuses); gather probed that one.
  auto chosen = [&](Gathered& g) {
    host.gather_for(g, {{"disp", "disp", me}});
    const auto& facts = g.inputs.sources.at("disp");
    return (run / choose_candidate({"disp-0", "disp-1"}, facts.candidates, me).path).string();
  };
  SUBCASE("only the second exists, as sway's wayland-1 does") {
    auto sway = bound_socket(run / "disp-1");
    REQUIRE(::listen(sway.get(), 1) == 0);
    Gathered g;
    CHECK(chosen(g) == (run / "disp-1").string());
    const auto& facts = g.inputs.sources.at("disp");
    CHECK(facts.exists == std::optional<bool>(true));  // the chosen one's facts
    REQUIRE(facts.candidates.size() == 2);
    CHECK_FALSE(facts.candidates[0].owned_socket);
    CHECK(facts.candidates[1].owned_socket);
    CHECK(facts.candidates[1].listening == std::optional<bool>(true));
  }
  SUBCASE("an older socket nobody listens on is left over: the live one is lent") {
    auto stale = bound_socket(run / "disp-0");  // bound, never listening
    auto live = bound_socket(run / "disp-1");
    REQUIRE(::listen(live.get(), 1) == 0);
    made_at("disp-0", 1000);
    made_at("disp-1", 2000);
    Gathered g;
    CHECK(chosen(g) == (run / "disp-1").string());
    CHECK(g.inputs.sources.at("disp").candidates[0].listening == std::optional<bool>(false));
  }
  SUBCASE("two live ones: the older, the session's own compositor") {
    auto nested = bound_socket(run / "disp-0");
    auto session = bound_socket(run / "disp-1");
    REQUIRE(::listen(nested.get(), 1) == 0);
    REQUIRE(::listen(session.get(), 1) == 0);
    made_at("disp-0", 2000);
    made_at("disp-1", 1000);
    Gathered g;
    CHECK(chosen(g) == (run / "disp-1").string());
    made_at("disp-0", 500);
    Gathered again;
    CHECK(chosen(again) == (run / "disp-0").string());
  }
  SUBCASE("none exists: the first, as with one path") {
    Gathered g;
    CHECK(chosen(g) == (run / "disp-0").string());
    CHECK(g.inputs.sources.at("disp").exists == std::optional<bool>(false));
  }
}

}  // namespace sockhook
