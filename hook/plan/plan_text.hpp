#pragma once

// A plan as `sockhook plan` prints it: for people (numbered steps, environment, warnings) and
// for programs (JSON). The hook executes exactly the steps both show.

#include <string>

#include <nlohmann/json.hpp>

#include "plan/plan.hpp"

namespace sockhook {

/// The plan for people: numbered steps, environment, warnings.
std::string format_plan(const Plan& plan);

/// The plan for programs.
nlohmann::json plan_to_json(const Plan& plan);

}  // namespace sockhook
