// libFuzzer target: Policy::parse on any text, and a stable round trip: whatever parses must
// format into text that parses back into the same rules.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "base/error.hpp"
#include "model/policy.hpp"

namespace {

/// The rules as a sorted list: format() groups them by domain, so only the order may change.
std::vector<std::tuple<std::string, std::string, std::vector<std::string>>> sorted(
    const sockhook::Policy& p) {
  std::vector<std::tuple<std::string, std::string, std::vector<std::string>>> v;
  for (const auto& r : p.rules()) v.emplace_back(r.uuid, r.owner, r.plugins);
  std::sort(v.begin(), v.end());
  return v;
}

bool same(const sockhook::Policy& a, const sockhook::Policy& b) { return sorted(a) == sorted(b); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  sockhook::Policy policy;
  try {
    policy = sockhook::Policy::parse(text);
  } catch (const sockhook::Error&) {
    return 0;
  }
  sockhook::Policy again;
  try {
    again = sockhook::Policy::parse(policy.format());
  } catch (const sockhook::Error&) {
    __builtin_trap();  // we wrote something we cannot read back
  }
  if (!same(policy, again)) __builtin_trap();
  // And from then on the text is a fixed point.
  if (sockhook::Policy::parse(again.format()).format() != again.format()) __builtin_trap();
  // allows() must agree between the two.
  for (const auto& r : policy.rules())
    for (const auto& p : r.plugins)
      if (!again.allows(r.uuid, r.owner, 4000000000u, p)) __builtin_trap();
  return 0;
}
