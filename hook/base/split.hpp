#pragma once

#include <string_view>
#include <vector>

namespace sockhook {

/// The parts of `s` between the occurrences of `sep`, empty parts included: "a/" gives "a"
/// and "", and "" gives one empty part.
inline std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    auto end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

}  // namespace sockhook
