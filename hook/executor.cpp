#include "executor.hpp"

#include "error.hpp"

namespace sockhook {

// Placeholder until the lending methods land: refuse clearly, never pretend.
void execute_prepare(const Plan& plan, const ExecContext&) {
  if (!plan.sockets.empty())
    throw Error(plan.sockets.front().request.name +
                ": cannot lend: this build of sockhook does not implement lending yet");
}

void execute_start(const Plan&, const ExecContext&) {}

std::vector<std::string> execute_release(const std::string&, const ExecContext&) { return {}; }

std::vector<std::string> execute_reconnect(const std::string&, const ExecContext&) { return {}; }

}  // namespace sockhook
