// sockhook-context-holder: the process a context lend leaves running for the VM's life
// (hook/lend/lend_context.hpp). Started by the hook as the owner, with nothing of the hook's
// (spawn_as_owner): the listening socket the hook bound in the lend directory is fd 3.
//
//   sockhook-context-holder --listen-fd 3 --connect PATH --domain NAME --uuid UUID
//                           --capture yes|no --label LABEL
//
// It connects to the owner's PipeWire at PATH with libpipewire, hands fd 3 to it as a
// security context (pw_security_context_create) whose clients carry sockhook's engine, the
// domain and its UUID, and keeps the read end of the context's close_fd until SIGTERM or
// SIGINT. PipeWire serves the socket exactly as long as that read end is open, and drops
// every client of it when it closes (LIBVIRT-NOTES, "Security contexts"): ending this
// process revokes the lend. Its own connection to PipeWire is closed once the context
// exists, so an idle holder holds one pipe and nothing of PipeWire's; when PipeWire closes
// its end of that pipe (the owner's server ended), the holder ends too, so that status
// reports the dead lend and refresh can lend again.
//
// Built only with libpipewire 1.2 or newer (the security context's first release).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>

// pipewire.h first: security-context.h uses its macros without including them.
#include <pipewire/pipewire.h>
// clang-format off
#include <pipewire/extensions/security-context.h>
// clang-format on

#include "holder_life.hpp"

namespace {

using sockhook::holder::connect_to;
using sockhook::holder::hold_until_stopped;
using sockhook::holder::report;
using sockhook::holder::stop_signals;

/// Longest the holder waits for PipeWire to answer one request: an owner's server that
/// does not answer must not keep the VM's start waiting for ever.
constexpr int kAnswerSeconds = 10;

struct Options {
  int listen_fd = -1;
  std::string connect;
  std::string domain;
  std::string uuid;
  std::string capture = "no";
  std::string label;
  int report_fd = -1;  ///< where to say "ok", or why not (the hook waits for it)
};

/// The state of one conversation with PipeWire, shared with libpipewire's callbacks.
struct Session {
  pw_main_loop* loop = nullptr;
  pw_core* core = nullptr;
  pw_registry* registry = nullptr;
  pw_security_context* context = nullptr;
  spa_hook core_listener{};
  spa_hook registry_listener{};
  int waiting_seq = -1;
  bool answered = false;
  std::string error;  ///< set by PipeWire's error event or by the deadline
};

void on_global(void* data, uint32_t id, uint32_t /*permissions*/, const char* type,
               uint32_t /*version*/, const spa_dict* /*props*/) {
  auto* s = static_cast<Session*>(data);
  if (s->context || std::string_view(type) != PW_TYPE_INTERFACE_SecurityContext) return;
  s->context = static_cast<pw_security_context*>(
      pw_registry_bind(s->registry, id, type, PW_VERSION_SECURITY_CONTEXT, 0));
}

void on_done(void* data, uint32_t id, int seq) {
  auto* s = static_cast<Session*>(data);
  if (id != PW_ID_CORE || seq != s->waiting_seq) return;
  s->answered = true;
  pw_main_loop_quit(s->loop);
}

void on_error(void* data, uint32_t /*id*/, int /*seq*/, int res, const char* message) {
  auto* s = static_cast<Session*>(data);
  s->error = std::string(message ? message : "") + " (" + std::strerror(-res) + ")";
  pw_main_loop_quit(s->loop);
}

void on_deadline(void* data, uint64_t /*expirations*/) {
  auto* s = static_cast<Session*>(data);
  s->error = "PipeWire did not answer within " + std::to_string(kAnswerSeconds) + " s";
  pw_main_loop_quit(s->loop);
}

/// Sends a sync and runs the loop until PipeWire has handled everything sent before it, or
/// an error, or the deadline. True if it answered.
bool round_trip(Session& s, spa_source* deadline) {
  timespec value{kAnswerSeconds, 0};
  timespec none{0, 0};
  pw_loop_update_timer(pw_main_loop_get_loop(s.loop), deadline, &value, &none, false);
  s.answered = false;
  s.waiting_seq = pw_core_sync(s.core, PW_ID_CORE, 0);
  pw_main_loop_run(s.loop);
  return s.answered && s.error.empty();
}

/// Creates the context. Returns the read end of its close_fd, or -1 with `why` set.
int create_context(const Options& o, std::string& why) {
  int server = connect_to(o.connect);
  if (server < 0) {
    why = "cannot connect to " + o.connect + ": " + std::strerror(errno);
    return -1;
  }
  Session s;
  s.loop = pw_main_loop_new(nullptr);
  pw_context* pw = pw_context_new(pw_main_loop_get_loop(s.loop), nullptr, 0);
  // pw_context_connect_fd owns `server` from here, even when it fails.
  s.core = pw ? pw_context_connect_fd(
                    pw, server,
                    pw_properties_new(PW_KEY_APP_NAME, "sockhook context holder", nullptr), 0)
              : nullptr;
  int keep = -1;
  spa_source* deadline = pw_loop_add_timer(pw_main_loop_get_loop(s.loop), on_deadline, &s);
  // Value-initialised, then the events we listen to (designated initialisers would have to
  // name every member).
  static const pw_core_events core_events = [] {
    pw_core_events e{};
    e.version = PW_VERSION_CORE_EVENTS;
    e.done = on_done;
    e.error = on_error;
    return e;
  }();
  static const pw_registry_events registry_events = [] {
    pw_registry_events e{};
    e.version = PW_VERSION_REGISTRY_EVENTS;
    e.global = on_global;
    return e;
  }();
  if (!s.core) {
    why = "cannot connect to PipeWire at " + o.connect + ": " + std::strerror(errno);
  } else {
    pw_core_add_listener(s.core, &s.core_listener, &core_events, &s);
    s.registry = pw_core_get_registry(s.core, PW_VERSION_REGISTRY, 0);
    pw_registry_add_listener(s.registry, &s.registry_listener, &registry_events, &s);
    int fds[2] = {-1, -1};
    if (!round_trip(s, deadline)) {
      why = "PipeWire at " + o.connect + " did not list its objects: " + s.error;
    } else if (!s.context) {
      why = "PipeWire at " + o.connect +
            " offers no security context (it needs PipeWire 1.2 or newer)";
    } else if (pipe2(fds, O_CLOEXEC) != 0) {
      why = std::string("cannot create a pipe: ") + std::strerror(errno);
    } else {
      // What every client of the socket carries. Only keys under "pipewire." are safe from
      // the client itself (PipeWire ignores such keys in a client's own property updates), so
      // the rules decide on these alone: the engine, and an access value WirePlumber's stock
      // policy does not know, so that without sockhook's rules the VM gets nothing.
      std::string access = o.capture == "yes" ? "sockhook-capture" : "sockhook";
      pw_properties* props =
          pw_properties_new("pipewire.sec.engine", "org.sockhook", "pipewire.access",
                            access.c_str(), "pipewire.sockhook.domain", o.domain.c_str(),
                            "pipewire.sockhook.uuid", o.uuid.c_str(), nullptr);
      pw_security_context_create(s.context, o.listen_fd, fds[1], &props->dict);
      pw_properties_free(props);
      if (round_trip(s, deadline)) {
        keep = fds[0];
      } else {
        why = "PipeWire at " + o.connect + " refused the security context: " + s.error;
        close(fds[0]);
      }
      // PipeWire has its own copies now; ours would keep the socket open after release.
      close(fds[1]);
    }
  }
  if (s.context) pw_proxy_destroy(reinterpret_cast<pw_proxy*>(s.context));
  if (s.registry) pw_proxy_destroy(reinterpret_cast<pw_proxy*>(s.registry));
  if (s.core) pw_core_disconnect(s.core);
  pw_loop_destroy_source(pw_main_loop_get_loop(s.loop), deadline);
  if (pw) pw_context_destroy(pw);
  pw_main_loop_destroy(s.loop);
  return keep;
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view key = argv[i];
    std::string value = argv[i + 1];
    if (key == "--listen-fd")
      o.listen_fd = std::stoi(value);
    else if (key == "--connect")
      o.connect = value;
    else if (key == "--domain")
      o.domain = value;
    else if (key == "--uuid")
      o.uuid = value;
    else if (key == "--capture")
      o.capture = value;
    else if (key == "--label")
      o.label = value;
    else if (key == "--report-fd")
      o.report_fd = std::stoi(value);
    else
      return false;
  }
  return argc % 2 == 1 && o.listen_fd >= 0 && o.connect.starts_with('/') && !o.uuid.empty() &&
         (o.capture == "yes" || o.capture == "no");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    if (!parse(argc, argv, o)) {
      std::cerr << "usage: sockhook-context-holder --listen-fd N --connect PATH --domain NAME "
                   "--uuid UUID --capture yes|no --label LABEL (internal; started by the hook)\n";
      return 2;
    }
  } catch (const std::exception&) {
    std::cerr << "sockhook-context-holder: --listen-fd is not a number\n";
    return 2;
  }
  openlog("sockhook", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  // A hook that gave up waiting must not kill us with SIGPIPE before we log why.
  signal(SIGPIPE, SIG_IGN);
  int stop_fd = stop_signals();
  if (stop_fd < 0) {
    std::string why = std::string("cannot create a signalfd: ") + std::strerror(errno);
    syslog(LOG_ERR, "context %s: %s", o.label.c_str(), why.c_str());
    report(o.report_fd, why);
    return 1;
  }

  pw_init(nullptr, nullptr);
  std::string why;
  int hold = create_context(o, why);
  pw_deinit();
  // PipeWire listens on its own copy of the socket; ours must not outlive the lend.
  close(o.listen_fd);
  if (hold < 0) {
    syslog(LOG_ERR, "context %s: %s", o.label.c_str(), why.c_str());
    std::cerr << "sockhook: error: context " << o.label << ": " << why << '\n';
    report(o.report_fd, why);
    return 1;
  }
  report(o.report_fd, "ok");
  syslog(LOG_INFO, "context %s: PipeWire serves the lend until this process ends", o.label.c_str());
  // PipeWire closes its end of close_fd when its server ends; closing ours (the read end)
  // tells it to stop serving and to drop the VM's clients.
  return hold_until_stopped(stop_fd, hold, POLLIN, o.label, "PipeWire");
}
