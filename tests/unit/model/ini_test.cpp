#include "model/ini.hpp"

#include <string>

#include <CLI/CLI.hpp>
#include <doctest/doctest.h>

#include "base/error.hpp"

namespace sockhook {
namespace {

/// The value of `key` in `items` ("" if absent; values joined by ",").
std::string value_of(const std::vector<CLI::ConfigItem>& items, const std::string& key) {
  for (const auto& i : items) {
    if (i.fullname() != key) continue;
    std::string out;
    for (const auto& v : i.inputs) out += (out.empty() ? "" : ",") + v;
    return out;
  }
  return "";
}

TEST_CASE("read_ini reads key = value lines and drops comments after a value") {
  auto items = read_ini("# a comment\nuser = \"qemu\"  # a note\ngroup = kvm\n", "test.conf");
  CHECK(value_of(items, "user") == "qemu");
  CHECK(value_of(items, "group") == "kvm");
  SUBCASE("a '#' inside quotes stays") {
    CHECK(value_of(read_ini("user = \"a#b\"\n", "t"), "user") == "a#b");
  }
  SUBCASE("sections name their keys") {
    auto sec = read_ini("[allow]\nalice = pipewire\n", "t");
    CHECK(value_of(sec, "allow.alice") == "pipewire");
    for (const auto& i : sec) CHECK((i.name != "++" && i.name != "--"));
  }
}

TEST_CASE("read_ini leaves empty text empty") { CHECK(read_ini("", "t").empty()); }

}  // namespace
}  // namespace sockhook
