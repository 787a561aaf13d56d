// sockhook-wayland-holder: the process a Wayland context lend leaves running for the VM's
// life (hook/lend/lend_context.hpp), and the probe that tells the planner whether the owner's
// compositor offers a security context. Started by the hook as the owner, with nothing of the
// hook's (spawn_as_owner, run_as_user).
//
//   sockhook-wayland-holder --listen-fd 3 --connect PATH --domain NAME --uuid UUID
//                           --label LABEL --report-fd 4
//   sockhook-wayland-holder --probe --connect PATH --report-fd 3
//
// Holding: it connects to the owner's compositor at PATH, hands fd 3 (the listening socket the
// hook bound in the lend directory) to it through wp_security_context_manager_v1
// (create_listener) with sockhook's engine, the domain's name as app id and its UUID as
// instance id, and keeps the write end of the context's close_fd until SIGTERM or SIGINT. The
// compositor accepts connections on the socket until that end closes; it hides its privileged
// globals from every client of it (LIBVIRT-NOTES, "Security contexts": sway 1.10 hides 17,
// among them screencopy, the virtual keyboard and pointer and the layer shell). Its own
// connection is closed once the context exists: the protocol keeps the listener without it.
//
// Probing: it lists the compositor's globals and reports "offered" or "none" on the report
// fd, or one line saying why it could not ask.
//
// Built only where wayland-protocols has security-context-v1.xml (1.32 or newer).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>

#include <wayland-client.h>

#include "holder_life.hpp"
#include "security-context-v1-client-protocol.h"

namespace {

using sockhook::holder::connect_to;
using sockhook::holder::hold_until_stopped;
using sockhook::holder::report;
using sockhook::holder::stop_signals;

/// Longest the holder waits for the compositor to answer one round trip: a compositor that
/// does not answer must not keep the VM's start (or its plan) waiting for ever. The hook
/// waits longer for the holder's word (lend_context.cpp) and for the probe (host/compositor).
constexpr int kAnswerMs = 5000;

/// The engine name a context lend gives its clients (as lend_context.hpp's kContextEngine).
constexpr const char* kEngine = "org.sockhook";

struct Options {
  bool probe = false;
  int listen_fd = -1;
  std::string connect;
  std::string domain;
  std::string uuid;
  std::string label;
  int report_fd = -1;  ///< where to say how it went (the hook waits for it)
};

/// What the registry showed, filled by its listener.
struct Globals {
  wl_registry* registry = nullptr;
  wp_security_context_manager_v1* manager = nullptr;
};

void on_global(void* data, wl_registry* registry, uint32_t name, const char* interface,
               uint32_t /*version*/) {
  auto* g = static_cast<Globals*>(data);
  if (g->manager || std::string_view(interface) != wp_security_context_manager_v1_interface.name)
    return;
  g->manager = static_cast<wp_security_context_manager_v1*>(
      wl_registry_bind(registry, name, &wp_security_context_manager_v1_interface, 1));
}

void on_global_remove(void* /*data*/, wl_registry* /*registry*/, uint32_t /*name*/) {}

const wl_registry_listener kRegistryListener = {on_global, on_global_remove};

void on_sync_done(void* data, wl_callback* /*callback*/, uint32_t /*serial*/) {
  *static_cast<bool*>(data) = true;
}

const wl_callback_listener kSyncListener = {on_sync_done};

/// Why the connection failed: the compositor's protocol error, or errno.
std::string display_error(wl_display* display) {
  int err = wl_display_get_error(display);
  if (err == EPROTO) {
    const wl_interface* interface = nullptr;
    uint32_t id = 0;
    uint32_t code = wl_display_get_protocol_error(display, &interface, &id);
    return "protocol error " + std::to_string(code) + " on " +
           (interface ? interface->name : "an object");
  }
  return std::strerror(err ? err : EIO);
}

/// Sends a sync and dispatches until the compositor has handled everything sent before it, an
/// error, or kAnswerMs. Empty if it answered, else why not.
std::string round_trip(wl_display* display) {
  bool done = false;
  wl_callback* callback = wl_display_sync(display);
  wl_callback_add_listener(callback, &kSyncListener, &done);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kAnswerMs);
  std::string why;
  while (!done && why.empty()) {
    if (wl_display_prepare_read(display) != 0) {
      if (wl_display_dispatch_pending(display) < 0) why = display_error(display);
      continue;
    }
    if (wl_display_flush(display) < 0 && errno != EAGAIN) {
      wl_display_cancel_read(display);
      why = display_error(display);
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{wl_display_get_fd(display), POLLIN, 0};
    int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) {
      wl_display_cancel_read(display);
      continue;
    }
    if (ready <= 0) {
      wl_display_cancel_read(display);
      why = "the compositor did not answer within " + std::to_string(kAnswerMs / 1000) + " s";
      break;
    }
    if (wl_display_read_events(display) < 0 || wl_display_dispatch_pending(display) < 0)
      why = display_error(display);
  }
  wl_callback_destroy(callback);
  return why;
}

/// One conversation with the compositor at `path`: connected, its globals listed (the
/// manager bound if it offers one). Closed when it goes out of scope.
class Conversation {
 public:
  explicit Conversation(const std::string& path) {
    int fd = connect_to(path);
    if (fd < 0) {
      why_ = "cannot connect to " + path + ": " + std::strerror(errno);
      return;
    }
    // wl_display_connect_to_fd owns `fd` from here, even when it fails.
    display_ = wl_display_connect_to_fd(fd);
    if (!display_) {
      why_ = "cannot start a Wayland connection on " + path + ": " + std::strerror(errno);
      return;
    }
    globals_.registry = wl_display_get_registry(display_);
    wl_registry_add_listener(globals_.registry, &kRegistryListener, &globals_);
    if (auto why = round_trip(display_); !why.empty())
      why_ = "the compositor at " + path + " did not list its globals: " + why;
  }
  ~Conversation() {
    if (globals_.manager) wp_security_context_manager_v1_destroy(globals_.manager);
    if (globals_.registry) wl_registry_destroy(globals_.registry);
    if (display_) wl_display_disconnect(display_);
  }
  Conversation(const Conversation&) = delete;
  Conversation& operator=(const Conversation&) = delete;

  /// Why the conversation failed, or "".
  const std::string& why() const { return why_; }
  wl_display* display() const { return display_; }
  wp_security_context_manager_v1* manager() const { return globals_.manager; }

 private:
  wl_display* display_ = nullptr;
  Globals globals_;
  std::string why_;
};

/// Creates the context on `listen_fd`. Returns the write end of its close_fd, or -1 with `why`
/// set.
int create_context(const Options& o, std::string& why) {
  Conversation c(o.connect);
  if (!c.why().empty()) {
    why = c.why();
    return -1;
  }
  if (!c.manager()) {
    why = "the compositor at " + o.connect +
          " offers no security context (wp_security_context_manager_v1)";
    return -1;
  }
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    why = std::string("cannot create a pipe: ") + std::strerror(errno);
    return -1;
  }
  // The compositor polls the read end for hangup: it serves the socket until our write end,
  // the only one, closes.
  auto* context = wp_security_context_manager_v1_create_listener(c.manager(), o.listen_fd, fds[0]);
  wp_security_context_v1_set_sandbox_engine(context, kEngine);
  wp_security_context_v1_set_app_id(context, o.domain.c_str());
  wp_security_context_v1_set_instance_id(context, o.uuid.c_str());
  wp_security_context_v1_commit(context);
  auto answer = round_trip(c.display());
  wp_security_context_v1_destroy(context);
  // libwayland sent copies; the compositor holds its own now.
  ::close(fds[0]);
  if (!answer.empty()) {
    why = "the compositor at " + o.connect + " refused the security context: " + answer;
    ::close(fds[1]);
    return -1;
  }
  return fds[1];
}

bool parse(int argc, char** argv, Options& o) {
  int i = 1;
  if (argc > 1 && std::string_view(argv[1]) == "--probe") {
    o.probe = true;
    i = 2;
  }
  if ((argc - i) % 2 != 0) return false;
  for (; i + 1 < argc; i += 2) {
    std::string_view key = argv[i];
    std::string value = argv[i + 1];
    if (key == "--listen-fd" && !o.probe)
      o.listen_fd = std::stoi(value);
    else if (key == "--connect")
      o.connect = value;
    else if (key == "--domain" && !o.probe)
      o.domain = value;
    else if (key == "--uuid" && !o.probe)
      o.uuid = value;
    else if (key == "--label" && !o.probe)
      o.label = value;
    else if (key == "--report-fd")
      o.report_fd = std::stoi(value);
    else
      return false;
  }
  if (!o.connect.starts_with('/')) return false;
  return o.probe ? o.report_fd >= 0 : o.listen_fd >= 0 && !o.uuid.empty() && !o.domain.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    if (!parse(argc, argv, o)) {
      std::cerr << "usage: sockhook-wayland-holder --listen-fd N --connect PATH --domain NAME "
                   "--uuid UUID --label LABEL --report-fd N\n"
                   "       sockhook-wayland-holder --probe --connect PATH --report-fd N\n"
                   "(internal; started by the hook)\n";
      return 2;
    }
  } catch (const std::exception&) {
    std::cerr << "sockhook-wayland-holder: a descriptor is not a number\n";
    return 2;
  }
  // A hook that gave up waiting must not kill us with SIGPIPE before we log why.
  ::signal(SIGPIPE, SIG_IGN);
  if (o.probe) {
    Conversation c(o.connect);
    report(o.report_fd, !c.why().empty() ? c.why() : c.manager() ? "offered" : "none");
    return c.why().empty() ? 0 : 1;
  }
  ::openlog("sockhook", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  int stop_fd = stop_signals();
  if (stop_fd < 0) {
    std::string why = std::string("cannot create a signalfd: ") + std::strerror(errno);
    ::syslog(LOG_ERR, "context %s: %s", o.label.c_str(), why.c_str());
    report(o.report_fd, why);
    return 1;
  }
  std::string why;
  int hold = create_context(o, why);
  // The compositor listens on its own copy of the socket; ours must not outlive the lend.
  ::close(o.listen_fd);
  if (hold < 0) {
    ::syslog(LOG_ERR, "context %s: %s", o.label.c_str(), why.c_str());
    std::cerr << "sockhook: error: context " << o.label << ": " << why << '\n';
    report(o.report_fd, why);
    return 1;
  }
  report(o.report_fd, "ok");
  ::syslog(LOG_INFO, "context %s: the compositor serves the lend until this process ends",
           o.label.c_str());
  // The compositor closes its end of close_fd when it ends (the write end then reports an
  // error); closing ours tells it to accept no new connection on the lend.
  return hold_until_stopped(stop_fd, hold, 0, o.label, "the compositor");
}
