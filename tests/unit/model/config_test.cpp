#include "model/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <doctest/doctest.h>

#include "base/error.hpp"

namespace sockhook {
namespace {

namespace fs = std::filesystem;

/// Sets SOCKHOOK_DRY_RUN for one scope and restores the previous state.
struct DryRunEnv {
  std::optional<std::string> saved;
  explicit DryRunEnv(const char* value) {
    if (const char* old = std::getenv("SOCKHOOK_DRY_RUN")) saved = old;
    if (value) {
      ::setenv("SOCKHOOK_DRY_RUN", value, 1);
    } else {
      ::unsetenv("SOCKHOOK_DRY_RUN");
    }
  }
  ~DryRunEnv() {
    if (saved) {
      ::setenv("SOCKHOOK_DRY_RUN", saved->c_str(), 1);
    } else {
      ::unsetenv("SOCKHOOK_DRY_RUN");
    }
  }
};

TEST_CASE("dry_run parses every spelling of true and false") {
  CHECK_FALSE(Config::parse("").dry_run);
  CHECK_FALSE(Config::parse("# only a comment\n").dry_run);
  for (const char* yes : {"true", "yes", "1"}) {
    CAPTURE(yes);
    CHECK(Config::parse(std::string("dry_run = ") + yes + "\n").dry_run);
  }
  for (const char* no : {"false", "no", "0"}) {
    CAPTURE(no);
    CHECK_FALSE(Config::parse(std::string("dry_run = ") + no + "\n").dry_run);
  }
  CHECK(Config::parse("dry_run = \"true\"\n").dry_run);
  // CLI11 merges a repeated key into one list, which is not a boolean.
  CHECK_THROWS_AS(Config::parse("dry_run = true\ndry_run = false\n"), Error);
}

TEST_CASE("A bad configuration is an Error") {
  SUBCASE("an unknown key") {
    CHECK_THROWS_WITH_AS(Config::parse("dry_rnu = true\n"),
                         "cannot parse configuration: unknown key 'dry_rnu'", Error);
  }
  SUBCASE("a key in a section is another key") {
    CHECK_THROWS_WITH_AS(Config::parse("[hook]\ndry_run = true\n"),
                         "cannot parse configuration: unknown key 'hook.dry_run'", Error);
  }
  SUBCASE("a bad value") {
    CHECK_THROWS_WITH_AS(Config::parse("dry_run = maybe\n"),
                         "cannot parse configuration: dry_run = 'maybe' is not true or false",
                         Error);
    CHECK_THROWS_AS(Config::parse("dry_run = TRUE\n"), Error);
    CHECK_THROWS_AS(Config::parse("dry_run = true false\n"), Error);
  }
}

TEST_CASE("config_path is under the system configuration directory") {
  CHECK(config_path() == "/etc/sockhook/sockhook.conf");
}

TEST_CASE("SOCKHOOK_DRY_RUN=1 forces dry-run mode") {
  char name[] = "/tmp/sockhook-config-test-XXXXXX";
  REQUIRE(::mkdtemp(name) != nullptr);
  fs::path dir = name;
  auto missing = (dir / "sockhook.conf").string();
  SUBCASE("unset: the defaults") {
    DryRunEnv env(nullptr);
    CHECK_FALSE(load_config(missing).dry_run);
  }
  SUBCASE("set to 1") {
    DryRunEnv env("1");
    CHECK(load_config(missing).dry_run);
  }
  SUBCASE("set to anything else") {
    DryRunEnv env("0");
    CHECK_FALSE(load_config(missing).dry_run);
    DryRunEnv env2("yes");
    CHECK_FALSE(load_config(missing).dry_run);
  }
  SUBCASE("it overrides dry_run = false in a trusted file") {
    if (::geteuid() != 0) {
      MESSAGE("skipped: a trusted configuration file must be owned by root");
    } else {
      std::ofstream(missing) << "dry_run = false\n";
      ::chmod(missing.c_str(), 0644);
      DryRunEnv env("1");
      CHECK(load_config(missing).dry_run);
      DryRunEnv env2(nullptr);
      CHECK_FALSE(load_config(missing).dry_run);
    }
  }
  SUBCASE("an untrusted file is refused") {
    std::ofstream(missing) << "dry_run = true\n";
    ::chmod(missing.c_str(), 0666);
    DryRunEnv env(nullptr);
    CHECK_THROWS_WITH_AS(
        load_config(missing),
        ("configuration " + missing + " is refused: it is writable by others").c_str(), Error);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sockhook
