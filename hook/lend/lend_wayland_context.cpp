#include "lend/lend_wayland_context.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "base/build.hpp"
#include "base/error.hpp"
#include "host/compositor.hpp"
#include "lend/lend_proxy.hpp"
#include "proxy/spawn.hpp"

namespace sockhook {

namespace {

/// Longest the hook waits for the holder's word: longer than the holder's own two waits for
/// the compositor (kAnswerMs each, hook/holder/wayland_holder.cpp).
constexpr int kReportTimeoutMs = 15000;

/// What the holder wrote on its report pipe until it closed it: "ok" or one line saying why
/// it failed. Bounded in time and size.
std::string read_report(const Fd& fd) {
  std::string said;
  char buf[512];
  while (said.size() < 4096) {
    pollfd p{fd.get(), POLLIN, 0};
    int ready = ::poll(&p, 1, kReportTimeoutMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0)
      return "the context holder did not report within " + std::to_string(kReportTimeoutMs / 1000) +
             " s";
    auto n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    said.append(buf, static_cast<std::size_t>(n));
  }
  while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
  return said.empty() ? "the context holder ended without saying why (see the system log)" : said;
}

}  // namespace

void start_wayland_context(SocketRun& run, const StartContext& step) {
  auto what = "cannot start a Wayland security context on " + step.listen_path;
  if (auto why = wayland_context_unavailable()) throw Error(what + ": " + *why);
  try {
    // The same lend as PipeWire's context: a socket the hook binds for QEMU's user, served by
    // a process of the owner's that the journal names (a kProxy entry).
    ServedLend lend(run, step.listen_path, step.owner);
    Fd sock = lend.listen(run.lend_dir, step.qemu_uid, run.qemu_gid);
    std::vector<std::string> args = {"sockhook-wayland-holder",
                                     "--listen-fd",
                                     "3",
                                     "--connect",
                                     step.source,
                                     "--domain",
                                     step.domain,
                                     "--uuid",
                                     step.uuid,
                                     "--label",
                                     lend.label(),
                                     "--report-fd",
                                     "4"};
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe");
    Fd report_read(fds[0]);
    Fd report_write(fds[1]);
    // As for the proxy (S6): the holder runs as the owner, whose compositor it asks, with
    // nothing of the hook's; the journal names it before it runs.
    spawn_as_owner(wayland_holder_path(run.ctx.self_exe), std::move(sock), std::move(args),
                   step.owner, step.owner_gid, "the context holder for " + lend.label(),
                   lend.recorder(), report_write);
    report_write.reset();
    // "ok" once the compositor serves the socket, or why not (e.g. it offers no security
    // context, or it is itself a sandboxed client: "nested").
    std::string said = read_report(report_read);
    if (said != "ok") throw Error(said);
  } catch (const Error& err) {
    throw err.with_context(what);
  }
}

}  // namespace sockhook
