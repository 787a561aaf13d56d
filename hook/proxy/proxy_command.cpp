// The `sockhook proxy` process: its command line, its stop signals and its exit code. What it
// runs is the relay (proxy/relay.cpp); how the hook starts and stops it is proxy/spawn.cpp.

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/error.hpp"
#include "base/log.hpp"
#include "proxy/relay.hpp"

namespace sockhook {

int run_proxy(Fd listen_fd, const ProxyOptions& options) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigset_t old_mask;
  if (sigprocmask(SIG_BLOCK, &stop_signals, &old_mask) < 0) throw_errno("cannot block signals");
  Fd signal_fd(signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd) throw_errno("cannot create signalfd");
  const int rc = run_proxy_until(std::move(listen_fd), options, signal_fd.get());
  // Consume the stop signal, or unblocking it below would deliver it after all.
  signalfd_siginfo info;
  while (read(signal_fd.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
  }
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return rc;
}

int proxy_command(int argc, char** argv) {
  // First of all: no longer dumpable, so that the owner, whose uid this process runs as, can
  // neither ptrace it nor take its descriptors (pidfd_getfd, /proc/PID/fd): the listening
  // socket QEMU's user reaches, and fd 4, the context socket only this proxy may reach (S10).
  // exec made it dumpable again, so a window from exec to here remains: an owner who stops the
  // process in it gets descriptors of their own server's lend, nothing the owner could not
  // give away anyway, and the aimed-kill guard (proxy_identity) covers what they could do.
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    print_error("proxy: cannot stop being dumpable: " + std::string(strerror(errno)));
    return 1;
  }
  CLI::App app{"Relays one lent socket (internal; started by the hook)", "sockhook proxy"};
  int listen_fd = -1;
  ProxyOptions options;
  std::string label;
  app.add_option("--listen-fd", listen_fd, "listening unix socket")->required();
  app.add_option("--connect", options.connect_path, "absolute path of the real socket")->required();
  app.add_option("--peer-uid", options.peer_uid, "the only uid served")->required();
  std::string peer_domain;
  app.add_option("--peer-domain", peer_domain, "ID:PARTITION, the only domain served")->required();
  app.add_option("--label", label, "shown in ps and logs");
  app.add_option("--max-queued-bytes", options.limits.max_queued_bytes);
  app.add_option("--max-queued-fds", options.limits.max_queued_fds);
  app.add_option("--max-connections", options.limits.max_connections);
  std::vector<std::string> args(argv, argv + argc);
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  openlog("sockhook", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  try {
    int type = 0;
    int accepting = 0;
    socklen_t len = sizeof type;
    if (listen_fd < 0 || getsockopt(listen_fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        type != SOCK_STREAM ||
        (len = sizeof accepting,
         getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len)) < 0 ||
        !accepting)
      throw Error("--listen-fd " + std::to_string(listen_fd) + " is not a listening stream socket");
    options.peer_domain = DomainCgroup::parse(peer_domain);
    if (!options.peer_domain)
      throw Error("--peer-domain '" + peer_domain + "' is not ID:PARTITION");
    Fd listen(listen_fd);
    fcntl(listen.get(), F_SETFD, FD_CLOEXEC);
    return run_proxy(std::move(listen), options);
  } catch (const Error& e) {
    syslog(LOG_ERR, "proxy %s: %s", options.label.c_str(), e.what());
    print_error("proxy " + options.label + ": " + e.what());
    return 1;
  }
}

}  // namespace sockhook
