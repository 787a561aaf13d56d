// Every shipped plugin and every example domain is loaded and planned here, so that neither can
// go stale. The directories are listed at run time: a new file is covered without editing this.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "fixtures.hpp"
#include "model/domain_xml.hpp"
#include "model/plugin.hpp"
#include "model/policy.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

namespace fs = std::filesystem;

/// The *.xml files of a repository directory, sorted; fails if there are none.
std::vector<fs::path> xml_files(const std::string& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(SOCKHOOK_SOURCE_DIR) / dir))
    if (e.path().extension() == ".xml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE_MESSAGE(!files.empty(), dir << "/ holds no *.xml file");
  return files;
}

PluginSet shipped_plugins() {
  PluginSet set;
  for (const auto& path : xml_files("plugins")) {
    CAPTURE(path.string());
    Plugin p;
    REQUIRE_NOTHROW(p = parse_plugin(read_text(path), false, path.string()));
    CHECK(p.name == path.stem().string());
    CHECK_FALSE(p.summary.empty());
    set.plugins.emplace(p.name, std::move(p));
  }
  return set;
}

TEST_CASE("Every shipped plugin parses as a non-admin plugin and is named like its file") {
  auto set = shipped_plugins();
  CHECK(set.plugins.size() == xml_files("plugins").size());
  // SPEC §3: never ship plugins for the manager socket, the session bus or agents.
  for (const auto& [name, p] : set.plugins) {
    CAPTURE(name);
    CHECK(p.socket_path != "pipewire-0-manager");
    CHECK(p.socket_path != "bus");
    CHECK(p.socket_path.find("ssh") == std::string::npos);
    CHECK(p.socket_path.find("gnupg") == std::string::npos);
  }
}

TEST_CASE("Every example domain parses cleanly and plans without errors") {
  auto plugins = shipped_plugins();
  const User alice{1000, 1000, "alice", "/home/alice"};
  for (const auto& path : xml_files("xml-examples")) {
    CAPTURE(path.string());
    DomainInfo domain;
    REQUIRE_NOTHROW(domain = parse_domain_xml(read_text(path)));
    CHECK(domain.has_metadata);
    CHECK(is_valid_uuid(domain.uuid));
    CHECK(domain.name == path.stem().string());
    for (const auto& d : domain.diagnostics) {
      CAPTURE(d.socket);
      CAPTURE(d.message);
      CHECK_MESSAGE(false, "the example has a diagnostic");
    }
    CHECK_FALSE(domain.sockets.empty());

    Policy policy;
    policy.allow(domain.uuid, "alice", "*");
    // auto decides from the facts; try both answers, and not knowing.
    for (std::optional<bool> exists :
         {std::optional<bool>{}, std::optional<bool>{true}, std::optional<bool>{false}}) {
      CAPTURE(exists.has_value() ? (*exists ? "exists" : "missing") : "unknown");
      PlanInputs in;
      in.qemu = default_qemu();
      in.owners = {{"alice", alice}, {"1000", alice}};
      for (const auto& s : domain.sockets) in.sources[s.name] = SourceFacts{exists, {}, {}, {}};
      auto plan = plan_with(in, domain, plugins, policy);
      CHECK(plan.errors.empty());
      CHECK(plan.warnings.empty());
      CHECK(plan.sockets.size() == domain.sockets.size());
      for (const auto& s : plan.sockets) {
        CAPTURE(s.request.name);
        CHECK_FALSE(s.steps.empty());
        CHECK_FALSE(s.env.empty());
        bool own_target = s.method == Method::kBind || s.method == Method::kProxy;
        if (own_target && exists.has_value()) {
          // An auto example must be right whichever method auto picks.
          CHECK(s.target.starts_with("/run/sockhook/libvirt-" + domain.uuid + "/"));
        }
        if (!own_target) continue;
        // The example must give QEMU everything a bind or proxy lend needs.
        for (const auto& e : s.env) {
          CAPTURE(e.name);
          CHECK_MESSAGE(e.provided, "the example does not give QEMU " << e.name << "=" << e.value);
        }
        for (const auto& w : texts(s.warnings)) {
          CAPTURE(w);
          CHECK(w.find("does not give QEMU") == std::string::npos);
          CHECK(w.find(" but this lend needs ") == std::string::npos);
        }
      }
    }
  }
}

}  // namespace
}  // namespace sockhook
