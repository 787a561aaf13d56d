#include "host/compositor.hpp"

#include <unistd.h>

#include <vector>

#include "base/error.hpp"
#include "sys/creds.hpp"
#include "sys/file.hpp"

namespace sockhook {

std::string wayland_holder_path(const std::string& self_exe) {
  return sockhook_program("sockhook-wayland-holder", self_exe);
}

SecurityContextAnswer ask_security_context(const std::string& holder, const std::string& socket,
                                           uid_t owner, gid_t owner_gid) {
  if (::geteuid() != 0) return {std::nullopt, "run as root to ask it"};
  if (::access(holder.c_str(), X_OK) != 0) return {std::nullopt, "no " + holder};
  // Everything the child needs is made before the fork: it only calls execve.
  std::vector<std::string> args = {
      "sockhook-wayland-holder", "--probe", "--connect", socket, "--report-fd", "3"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  auto asked = attempt([&]() -> SecurityContextAnswer {
    auto out = run_as_user(
        owner, owner_gid,
        [&](int /*fd 3*/) {
          ::execve(holder.c_str(), argv.data(), envp);
          return 126;
        },
        512, kCompositorProbeMs);
    auto said = out.output;
    while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
    if (out.status == 0 && said == "offered") return {true, ""};
    if (out.status == 0 && said == "none") return {false, ""};
    if (said.empty() || said.size() > 256)
      said = "the probe ended with status " + std::to_string(out.status);
    return {std::nullopt, said};
  });
  return asked ? *asked.value : SecurityContextAnswer{std::nullopt, asked.what()};
}

}  // namespace sockhook
