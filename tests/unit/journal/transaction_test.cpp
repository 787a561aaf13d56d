#include "journal/transaction.hpp"

#include <cstddef>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

namespace sockhook {

TEST_CASE("undo takes back entries newest first, all of them or one socket's from a mark on") {
  // A lend as prepare makes it: the directory, then per socket a placeholder and what uses it;
  // index 4 and 5 come from a second attempt at "pw" (after a mark at 4).
  AclGranted acl;
  acl.socket = "pw";
  const std::vector<Effect> made = {DirMade{{"", ""}},    FileMade{{"pw", ""}},
                                    Mounted{{"pw", ""}},  FileMade{{"pulse", ""}},
                                    FileMade{{"pw", ""}}, acl};
  using Order = std::vector<std::size_t>;
  SUBCASE("release: everything, a mount before its placeholder, the directory last") {
    CHECK(undo_order(made) == Order{5, 4, 3, 2, 1, 0});
    CHECK(undo_order({}).empty());
  }
  SUBCASE("one socket from the start: all its entries, never the directory or another socket") {
    CHECK(undo_order(made, "pw") == Order{5, 4, 2, 1});
    CHECK(undo_order(made, "pulse") == Order{3});
  }
  SUBCASE("from a mark: what an attempt made after it, nothing from before") {
    CHECK(undo_order(made, "pw", 3) == Order{5, 4});
    CHECK(undo_order(made, "pw", 5) == Order{5});
    CHECK(undo_order(made, "pw", 6).empty());
  }
  SUBCASE("a socket with no entries undoes nothing") { CHECK(undo_order(made, "jack").empty()); }
  SUBCASE("the domain's own entries are those with no socket name") {
    CHECK(undo_order(made, "") == Order{0});
  }
}

}  // namespace sockhook
