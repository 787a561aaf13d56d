#include "model/ini.hpp"

#include <algorithm>
#include <sstream>

#include <CLI/CLI.hpp>

#include "base/error.hpp"

namespace sockhook {
namespace {

/// Drops each '#' comment that is outside quotes.
std::string strip_comments(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  char quote = 0;
  bool comment = false;
  for (char c : text) {
    if (c == '\n') {
      quote = 0;
      comment = false;
    } else if (comment) {
      continue;
    } else if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#') {
      comment = true;
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::vector<CLI::ConfigItem> read_ini(std::string_view text, const std::string& what) {
  std::istringstream in{strip_comments(text)};
  auto parsed = attempt<CLI::Error>([&] { return CLI::ConfigINI().from_config(in); });
  if (!parsed) throw Error("cannot parse " + what + ": " + parsed.what());
  auto items = std::move(*parsed.value);
  items.erase(
      std::remove_if(items.begin(), items.end(),
                     [](const CLI::ConfigItem& i) { return i.name == "++" || i.name == "--"; }),
      items.end());
  return items;
}

}  // namespace sockhook
