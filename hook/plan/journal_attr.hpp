#pragma once

#include <charconv>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <variant>

#include <pugixml.hpp>

#include "base/error.hpp"
#include "plan/step.hpp"

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

// ---- Fields: a step's or an effect's `kFields` list, written and read generically. ----

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

/// AsIs: strings as they are, bools as "yes"/"no", numbers in decimal.
template <typename T>
void put_value(AsIs, pugi::xml_node& node, const char* name, const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    put_flag(node, name, value);
  } else {
    put(node, name, value);
  }
}
template <typename T>
void get_value(AsIs, const pugi::xml_node& node, const char* name, T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    value = text(node, name);
  } else if constexpr (std::is_same_v<T, bool>) {
    value = flag(node, name);
  } else {
    value = number<T>(node, name);
  }
}

/// The alternative of the variant `V` that `By` names `name` (ByAction: a step's kAction,
/// ByKind: an effect's kKind), default-constructed; nullopt if none.
struct ByAction {
  template <typename T>
  static constexpr std::string_view of() {
    return T::kAction;
  }
};
struct ByKind {
  template <typename T>
  static constexpr std::string_view of() {
    return T::kKind;
  }
};
template <typename V, typename By>
std::optional<V> alternative_named(std::string_view name) {
  return []<typename... Ts>(std::string_view n, const std::variant<Ts...>*) {
    std::optional<V> out;
    (void)((n == By::template of<Ts>() ? (out = Ts{}, true) : false) || ...);
    return out;
  }(name, static_cast<const V*>(nullptr));
}

/// Calls `f(field, value)` for each field of `s`, in the order its `kFields` lists them.
template <typename S, typename F>
void for_each_field(S& s, F&& f) {
  std::apply([&](const auto&... field) { (f(field, s.*field.member), ...); },
             std::remove_const_t<S>::kFields);
}

/// Appends each field of `s` as an attribute of `node`; an absent optional writes none.
template <typename S>
void put_fields(pugi::xml_node& node, const S& s) {
  for_each_field(s, [&](const auto& field, const auto& value) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (IsOptional<T>::value) {
      if (value) put_value(field.codec, node, field.journal, *value);
    } else {
      put_value(field.codec, node, field.journal, value);
    }
  });
}

/// Reads each field of `s` from the attributes of `node`; an optional's may be absent.
template <typename S>
void get_fields(const pugi::xml_node& node, S& s) {
  for_each_field(s, [&](const auto& field, auto& value) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (IsOptional<T>::value) {
      if (node.attribute(field.journal))
        get_value(field.codec, node, field.journal, value.emplace());
    } else {
      get_value(field.codec, node, field.journal, value);
    }
  });
}

}  // namespace sockhook::journal_attr
