// Times whole processes: spawns a command RUNS times with stdin from a file and reports the
// median, p90 and minimum wall time in microseconds, as one JSON line. bench/hook_bench.sh
// uses it to compare the hook with a shell-script hook and with a bare process start.
//
//   spawn_timer RUNS STDIN_FILE COMMAND [ARGS...]
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

extern char** environ;

namespace {

/// One run: spawn, wait, return microseconds; exits the program if the command fails.
double run_once(char** argv, const char* stdin_file) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, stdin_file, O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv, environ) != 0) {
    std::perror("spawn_timer: cannot spawn");
    std::exit(1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  auto end = std::chrono::steady_clock::now();
  posix_spawn_file_actions_destroy(&actions);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "spawn_timer: %s failed (status %d)\n", argv[0], status);
    std::exit(1);
  }
  return std::chrono::duration<double, std::micro>(end - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: spawn_timer RUNS STDIN_FILE COMMAND [ARGS...]\n");
    return 2;
  }
  int runs = std::atoi(argv[1]);
  const char* stdin_file = argv[2];
  std::vector<double> times;
  for (int i = 0; i < 5; ++i) run_once(argv + 3, stdin_file);  // warm the page cache
  for (int i = 0; i < runs; ++i) times.push_back(run_once(argv + 3, stdin_file));
  std::sort(times.begin(), times.end());
  auto at = [&](double q) {
    return times[static_cast<std::size_t>(q * static_cast<double>(times.size() - 1))];
  };
  nlohmann::json j{
      {"runs", runs}, {"median_us", at(0.5)}, {"p90_us", at(0.9)}, {"min_us", times.front()}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
