#pragma once

namespace sockhook {

/// The command line (SPEC §6). Returns the exit code: 0 success, 1 failure, 2 bad usage.
int run_cli(int argc, char** argv);

}  // namespace sockhook
