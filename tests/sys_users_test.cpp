#include <sstream>

#include <doctest/doctest.h>

#include "sys/users.hpp"

using namespace sockhook;

TEST_CASE("login.defs: the regular uid range") {
  SUBCASE("the keys that count, and shadow's defaults (1000, 60000) otherwise") {
    struct Case {
      const char* what;
      const char* text;
      uid_t min, max;
    };
    const Case cases[] = {
        {"both keys, among others and comments",
         "# UID_MIN 1\n"
         "MAIL_DIR        /var/mail\n"
         "UID_MIN                  2000\n"
         "UID_MAX\t\t\t50000\n"
         "SYS_UID_MAX               999\n",
         2000, 50000},
        {"absent keys keep shadow's defaults", "GID_MIN 5000\n", 1000, 60000},
        {"a value that is no number is ignored", "UID_MIN lots\nUID_MAX -1\n", 1000, 60000},
        {"a commented-out key does not count", "#UID_MAX 70000\n", 1000, 60000},
    };
    for (const auto& c : cases) {
      INFO(c.what);
      std::istringstream in(c.text);
      auto r = parse_login_defs(in);
      CHECK(r.min == c.min);
      CHECK(r.max == c.max);
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
