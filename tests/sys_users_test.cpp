#include <sstream>

#include <doctest/doctest.h>

#include "sys/users.hpp"

using namespace sockhook;

namespace {
UidRange parse(const std::string& text) {
  std::istringstream in(text);
  return parse_login_defs(in);
}
}  // namespace

TEST_CASE("login.defs: the regular uid range") {
  SUBCASE("both keys, among others and comments") {
    auto r = parse(
        "# UID_MIN 1\n"
        "MAIL_DIR        /var/mail\n"
        "UID_MIN                  2000\n"
        "UID_MAX\t\t\t50000\n"
        "SYS_UID_MAX               999\n");
    CHECK(r.min == 2000);
    CHECK(r.max == 50000);
  }
  SUBCASE("absent keys keep shadow's defaults") {
    auto r = parse("GID_MIN 5000\n");
    CHECK(r.min == 1000);
    CHECK(r.max == 60000);
  }
  SUBCASE("a value that is no number is ignored") {
    auto r = parse("UID_MIN lots\nUID_MAX -1\n");
    CHECK(r.min == 1000);
    CHECK(r.max == 60000);
  }
  SUBCASE("a commented-out key does not count") {
    auto r = parse("#UID_MAX 70000\n");
    CHECK(r.max == 60000);
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
