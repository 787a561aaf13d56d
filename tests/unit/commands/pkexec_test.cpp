#include "commands/pkexec.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

const PkexecAsk kGrant{"win11: pulseaudio", "org.sockhook.grant", "nothing changed"};

// pkexec's texts, as polkit 122 (Debian 12) and 126 (Debian 13) print them.
constexpr const char* kNotAuthorized =
    "Error executing command as another user: Not authorized\n\nThis incident has been "
    "reported.\n";
constexpr const char* kNoTerminal =
    "Error creating textual authentication agent: Error opening current controlling terminal "
    "for the process (`/dev/tty'): No such device or address\n";

}  // namespace

TEST_CASE("pkexec's refusals become one line naming the domain, the socket and the action") {
  auto line = pkexec_refusal(kGrant, 1001, 127, kNotAuthorized);
  REQUIRE(line);
  CHECK(*line ==
        "win11: pulseaudio: polkit did not authorise org.sockhook.grant for uid 1001 (an "
        "administrator decides, see /etc/polkit-1/rules.d); nothing changed");
  CHECK(line->find('\n') == std::string::npos);

  SUBCASE("no terminal to ask a password on is a refusal too") {
    auto no_tty = pkexec_refusal(kGrant, 1001, 127, kNoTerminal);
    REQUIRE(no_tty);
    CHECK(no_tty->starts_with("win11: pulseaudio: polkit did not authorise org.sockhook.grant"));
    CHECK(no_tty->find("without a password") != std::string::npos);
    CHECK(pkexec_refusal(kGrant, 1001, 127,
                         "Error executing command as another user: No authentication agent "
                         "found.\n"));
  }
  SUBCASE("the owner dismissed the dialog") {
    auto dismissed = pkexec_refusal(kGrant, 1001, 126,
                                    "Error executing command as another user: Request dismissed\n");
    REQUIRE(dismissed);
    CHECK(dismissed->find("was dismissed; nothing changed") != std::string::npos);
  }
}

TEST_CASE("anything else of pkexec's is not taken for a refusal") {
  // polkitd not running: pkexec's own text is kept (the caller folds it into its line).
  CHECK_FALSE(
      pkexec_refusal(kGrant, 1001, 127,
                     "Error checking for authorization org.sockhook.grant: "
                     "GDBus.Error:org.freedesktop.DBus.Error.ServiceUnknown: The name "
                     "org.freedesktop.PolicyKit1 was not provided by any .service files\n"));
  // The program ran: its exit code and its own lines are its own, whatever they say.
  CHECK_FALSE(pkexec_refusal(kGrant, 1001, 1, kNotAuthorized));
  CHECK_FALSE(pkexec_refusal(kGrant, 1001, 0, ""));
  CHECK_FALSE(pkexec_refusal(kGrant, 1001, 126, kNotAuthorized));
}

TEST_CASE("the caller is PKEXEC_UID alone, and a regular user") {
  ::unsetenv("PKEXEC_UID");
  CHECK_THROWS_WITH_AS(caller_from_pkexec("polkit-status"),
                       doctest::Contains("is run by pkexec only"), Error);
  SKIP_UNLESS_ROOT("pkexec's programs run as root");
  ::setenv("PKEXEC_UID", "0", 1);
  CHECK_THROWS_WITH_AS(caller_from_pkexec("polkit-status"),
                       doctest::Contains("is not a regular user"), Error);
  ::setenv("PKEXEC_UID", "1000 ", 1);
  CHECK_THROWS_WITH_AS(caller_from_pkexec("polkit-status"), doctest::Contains("is not a uid"),
                       Error);
  ::unsetenv("PKEXEC_UID");
}

}  // namespace sockhook
