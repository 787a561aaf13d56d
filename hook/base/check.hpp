#pragma once

#include <string>

namespace sockhook {

/// One finding of `sockhook doctor`: what was checked, how it stands, and what to do.
struct Check {
  enum class Level { kOk, kWarn, kFail } level;
  std::string what;
  std::string advice;  ///< what to do about it, if anything
};

}  // namespace sockhook
