#include "transaction.hpp"

#include <cstddef>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace sockhook {
namespace {

/// Journal entries of the given kinds and sockets, in the order they were made.
std::vector<JournalEntry> entries(const std::vector<std::pair<EntryKind, std::string>>& made) {
  std::vector<JournalEntry> out;
  for (const auto& [kind, socket] : made) {
    JournalEntry e;
    e.kind = kind;
    e.socket = socket;
    out.push_back(e);
  }
  return out;
}

}  // namespace

TEST_CASE("release undoes every entry, newest first") {
  // A lend as prepare makes it: the directory, then per socket a placeholder and its mount.
  auto made = entries({{EntryKind::kDir, ""},
                       {EntryKind::kFile, "pw"},
                       {EntryKind::kMount, "pw"},
                       {EntryKind::kFile, "pulse"},
                       {EntryKind::kAcl, "pulse"}});
  // The mount goes before its placeholder, the directory last.
  CHECK(undo_order(made) == std::vector<std::size_t>{4, 3, 2, 1, 0});
  CHECK(undo_order({}).empty());
}

TEST_CASE("undoing one socket takes back only its entries from the mark on, newest first") {
  auto made = entries({{EntryKind::kDir, ""},
                       {EntryKind::kFile, "pw"},
                       {EntryKind::kMount, "pw"},
                       {EntryKind::kFile, "pulse"},
                       {EntryKind::kFile, "pw"},
                       {EntryKind::kAcl, "pw"}});
  SUBCASE("from the start: every entry of the socket, never the directory or another socket") {
    CHECK(undo_order(made, "pw") == std::vector<std::size_t>{5, 4, 2, 1});
    CHECK(undo_order(made, "pulse") == std::vector<std::size_t>{3});
  }
  SUBCASE("from a mark: what an attempt made after it, nothing from before") {
    CHECK(undo_order(made, "pw", 3) == std::vector<std::size_t>{5, 4});
    CHECK(undo_order(made, "pw", 5) == std::vector<std::size_t>{5});
    CHECK(undo_order(made, "pw", 6).empty());
  }
  SUBCASE("a socket with no entries undoes nothing") { CHECK(undo_order(made, "jack").empty()); }
  SUBCASE("the domain's own entries are those with no socket name") {
    CHECK(undo_order(made, "") == std::vector<std::size_t>{0});
  }
}

}  // namespace sockhook
