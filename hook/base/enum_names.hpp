#pragma once

#include <optional>
#include <string_view>
#include <utility>

namespace sockhook {

/// The names of an enum's values, in one table that serves both directions.
template <typename E, std::size_t N>
struct EnumNames {
  std::pair<E, std::string_view> table[N];

  /// The name of `value`, or "?" if the table lacks it.
  constexpr std::string_view name(E value) const {
    for (const auto& [v, n] : table)
      if (v == value) return n;
    return "?";
  }
  /// The value named `text`, or nullopt.
  constexpr std::optional<E> parse(std::string_view text) const {
    for (const auto& [v, n] : table)
      if (n == text) return v;
    return std::nullopt;
  }
};

template <typename E, std::size_t N>
EnumNames(const std::pair<E, std::string_view> (&)[N]) -> EnumNames<E, N>;

}  // namespace sockhook
