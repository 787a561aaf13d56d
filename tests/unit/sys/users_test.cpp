#include "sys/users.hpp"

#include <initializer_list>
#include <sstream>
#include <utility>

#include <doctest/doctest.h>

using namespace sockhook;

TEST_CASE("login.defs: the regular uid range") {
  SUBCASE("the keys that count, and shadow's defaults (1000, 60000) otherwise") {
    for (const auto& [text, expected] : std::initializer_list<std::pair<const char*, UidRange>>{
             // Both keys, among others and comments.
             {"# UID_MIN 1\n"
              "MAIL_DIR        /var/mail\n"
              "UID_MIN                  2000\n"
              "UID_MAX\t\t\t50000\n"
              "SYS_UID_MAX               999\n",
              {2000, 50000}},
             {"GID_MIN 5000\n", {1000, 60000}},              // absent keys keep the defaults
             {"UID_MIN lots\nUID_MAX -1\n", {1000, 60000}},  // a value that is no number is ignored
             {"#UID_MAX 70000\n", {1000, 60000}},            // a commented-out key does not count
         }) {
      INFO(text);
      std::istringstream in(text);
      auto r = parse_login_defs(in);
      CHECK(r.min == expected.min);
      CHECK(r.max == expected.max);
    }
  }
  SUBCASE("contains: both ends included, nobody and libvirt-qemu outside") {
    UidRange r{1000, 60000};
    CHECK(r.contains(1000));
    CHECK(r.contains(60000));
    CHECK_FALSE(r.contains(999));
    CHECK_FALSE(r.contains(60001));
    CHECK_FALSE(r.contains(64055));
    CHECK_FALSE(r.contains(65534));
  }
  SUBCASE("a missing file gives the defaults") {
    auto r = regular_uid_range("/nonexistent/login.defs");
    CHECK(r.min == 1000);
    CHECK(r.max == 60000);
  }
}
