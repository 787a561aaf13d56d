#include "base/error.hpp"

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <string>

#include <doctest/doctest.h>

#include "sys/fd.hpp"

namespace sockhook {
namespace {

TEST_CASE("attempt returns the value, or the Error with its errno") {
  auto ok = attempt([] { return 42; });
  REQUIRE(ok);
  CHECK(*ok.value == 42);
  CHECK_FALSE(ok.error);
  CHECK(ok.what().empty());

  auto failed = attempt([]() -> int { throw Error("cannot open x: No such file", ENOENT); });
  CHECK_FALSE(failed);
  REQUIRE(failed.error);
  CHECK(failed.what() == "cannot open x: No such file");
  CHECK(failed.error->err() == ENOENT);
  CHECK_FALSE(failed.unexpected);

  // A void body, and a move-only value.
  int ran = 0;
  CHECK(attempt([&] { ++ran; }));
  CHECK(ran == 1);
  auto fd = attempt([] { return Fd(); });
  REQUIRE(fd);
  CHECK_FALSE(fd.value->valid());
}

TEST_CASE("attempt lets anything but what it catches travel on") {
  CHECK_THROWS_AS(attempt([] { throw std::logic_error("bug"); }), std::logic_error);
  auto caught = attempt<std::exception>([] { throw std::logic_error("bug"); });
  CHECK_FALSE(caught);
  CHECK(caught.unexpected);
  CHECK(caught.what() == "bug");
  auto error = attempt<std::exception>([] { throw Error("expected", EACCES); });
  CHECK_FALSE(error.unexpected);
  CHECK(error.error->err() == EACCES);
}

TEST_CASE("value_or_none, in_context and problem_of") {
  CHECK(value_or_none([] { return std::string("x"); }) == std::optional<std::string>("x"));
  CHECK_FALSE(value_or_none([]() -> std::string { throw Error("missing"); }));

  CHECK(in_context("cannot read f", [] { return 7; }) == 7);
  try {
    in_context("cannot read f", [] { throw Error("it is larger than 4 bytes", EFBIG); });
    FAIL("in_context swallowed the error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "cannot read f: it is larger than 4 bytes");
    CHECK(e.err() == EFBIG);
  }

  CHECK_FALSE(problem_of([] {}));
  CHECK(problem_of([] { throw std::runtime_error("disk full"); }) ==
        std::optional<std::string>("disk full"));
  CHECK(problem_of([] { throw Error("no lock"); }) == std::optional<std::string>("no lock"));
}

}  // namespace
}  // namespace sockhook
