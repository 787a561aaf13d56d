// sockhook: lends desktop sockets to libvirt/QEMU domains. main only chooses the mode.
#include <string_view>

#include "commands/cli.hpp"
#include "commands/hook_entry.hpp"
#include "proxy/relay.hpp"

int main(int argc, char** argv) {
  // libvirt runs us as /etc/libvirt/hooks/qemu or .../qemu.d/<name> with four arguments.
  if (argc >= 1 && sockhook::invoked_as_hook(argv[0])) {
    auto arg = [&](int i) { return i < argc ? std::string(argv[i]) : std::string(); };
    return sockhook::run_hook({arg(1), arg(2), arg(3), arg(4)});
  }
  // The proxy process the hook starts (internal): kept apart from the CLI so that an idle
  // proxy carries nothing else.
  if (argc >= 2 && std::string_view(argv[1]) == "proxy")
    return sockhook::proxy_command(argc - 2, argv + 2);
  return sockhook::run_cli(argc, argv);
}
