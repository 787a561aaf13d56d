#pragma once

#include <charconv>
#include <limits>
#include <string>
#include <string_view>

#include <pugixml.hpp>

#include "base/error.hpp"

namespace sockhook::journal_attr {

// Typed attributes of the journal's XML (journal.cpp, step.cpp). Reading throws
// Error("corrupt journal: ...") for anything missing or malformed.

[[noreturn]] inline void corrupt(const std::string& why) { throw Error("corrupt journal: " + why); }

/// The attribute `name` of `node` as text; it must be present.
inline std::string text(const pugi::xml_node& node, const char* name) {
  auto attr = node.attribute(name);
  if (!attr) corrupt("<" + std::string(node.name()) + "> lacks " + name);
  return attr.value();
}

/// The attribute `name` of `node` as a decimal number that fits `T`.
template <typename T>
T number(const pugi::xml_node& node, const char* name) {
  auto value = text(node, name);
  std::string_view digits = value;
  unsigned long long v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size())
    corrupt(std::string(name) + "='" + value + "' is not a number");
  if (v > static_cast<unsigned long long>(std::numeric_limits<T>::max()))
    corrupt(std::string(name) + " is out of range");
  return static_cast<T>(v);
}

/// The attribute `name` of `node` as "yes" (true) or anything else (false).
inline bool flag(const pugi::xml_node& node, const char* name) { return text(node, name) == "yes"; }

template <typename T>
void put(pugi::xml_node& node, const char* name, T value) {
  node.append_attribute(name) = std::to_string(value).c_str();
}
inline void put(pugi::xml_node& node, const char* name, const std::string& value) {
  node.append_attribute(name) = value.c_str();
}
inline void put_flag(pugi::xml_node& node, const char* name, bool value) {
  node.append_attribute(name) = value ? "yes" : "no";
}

}  // namespace sockhook::journal_attr
