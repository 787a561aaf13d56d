// libFuzzer target: parse_plugin in both trust modes, then expand() of every value it kept.
// A plugin that parses must never yield a path that escapes its base.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "model/plugin.hpp"

namespace {

bool escapes(const std::string& path) {
  return path == ".." || path.starts_with("../") || path.ends_with("/..") ||
         path.find("/../") != std::string::npos;
}

void check(std::string_view xml, bool admin) {
  sockhook::Plugin p;
  try {
    p = sockhook::parse_plugin(xml, admin, "fuzz.xml");
  } catch (const sockhook::Error&) {
    return;
  }
  if (p.socket_path.empty() || escapes(p.socket_path)) __builtin_trap();
  if (!admin && p.socket_path.front() == '/') __builtin_trap();
  if (!sockhook::is_plain_file_name(p.socket_target)) __builtin_trap();
  sockhook::Variables vars{"/run/user/1000",  "/home/alice",       "alice",          "1000",
                           "/run/sockhook/u", "/run/sockhook/u/t", "/run/sockhook/u"};
  // Values were checked at parse time: expanding them must not throw.
  for (const auto& e : p.env) (void)sockhook::expand(e.value, vars);
  for (const auto& a : p.audio) (void)sockhook::expand(a.value, vars);
  for (const auto& f : p.files) {
    if (escapes(f.path) || !sockhook::is_plain_file_name(f.target)) __builtin_trap();
    if (!admin && f.path.front() == '/') __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  check(text, false);
  check(text, true);
  // expand() on raw input: only Error may come out.
  try {
    (void)sockhook::expand(text, sockhook::Variables{"r", "h", "u", "0", "l", "t", "f"});
  } catch (const sockhook::Error&) {
  }
  return 0;
}
