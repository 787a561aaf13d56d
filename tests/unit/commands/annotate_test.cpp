#include "commands/annotate.hpp"

#include <string>
#include <utility>

#include <doctest/doctest.h>

#include "fixtures.hpp"

namespace sockhook {
namespace {

TEST_CASE("libvirt versions parse from text and numbers") {
  for (auto [text, version] : {std::pair{"9.0.0", 9000000UL}, std::pair{"9.10", 9010000UL},
                               std::pair{"7002000", 7002000UL}}) {
    CAPTURE(text);
    CHECK(parse_libvirt_version(text) == version);
  }
  check_accepts_only([](const std::string& s) { return parse_libvirt_version(s).has_value(); }, {},
                     {"9.0.0.1", "9.x", "", "9.1000"});
}

}  // namespace
}  // namespace sockhook
