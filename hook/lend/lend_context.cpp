#include "lend/lend_context.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/error.hpp"
#include "lend/lend_proxy.hpp"
#include "proxy/spawn.hpp"
#include "sys/file.hpp"

namespace sockhook {

namespace {

/// Longest the hook waits for a holder's word: longer than the holder's own two waits for its
/// server (kAnswerSeconds each in hook/holder/context_holder.cpp, kAnswerMs each in
/// hook/holder/wayland_holder.cpp).
constexpr int kReportTimeoutMs = 25000;

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

/// The server a context step asks, by name, and its holder program.
struct Holder {
  const char* server;
  const char* program;
};
Holder holder_of(const StartContext& step) {
  return step.wayland() ? Holder{"Wayland", "sockhook-wayland-holder"}
                        : Holder{"PipeWire", "sockhook-context-holder"};
}
std::optional<std::string> unavailable(const StartContext& step) {
  return step.wayland() ? wayland_context_unavailable() : context_unavailable();
}

/// Binds the lend socket, records its inode, starts the holder as the owner and waits for its
/// word: the part shared by start and restart, and by PipeWire and Wayland.
void launch(ServedLend& lend, const Fd& dir, const StartContext& step, const ExecContext& ctx,
            gid_t qemu_gid) {
  // Behind a proxy (S10) the socket is the owner's: only the proxy, given an fd to it, and
  // root reach it; otherwise it is the lend, QEMU's.
  Fd sock = step.private_socket() ? lend.listen(dir, step.owner, step.owner_gid)
                                  : lend.listen(dir, step.qemu_uid, qemu_gid);
  auto holder = holder_of(step);
  std::vector<std::string> args = {
      holder.program, "--listen-fd", "3",      "--connect", step.source,
      "--domain",     step.domain,   "--uuid", step.uuid,   "--label",
      lend.label(),   "--report-fd", "4"};
  // Only PipeWire's context can also give the sources (capture="yes").
  if (!step.wayland()) args.insert(args.end(), {"--capture", step.capture ? "yes" : "no"});
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe");
  Fd report_read(fds[0]);
  Fd report_write(fds[1]);
  // As for the proxy (S6): the holder runs as the owner, who alone may create a context on
  // the owner's server, with nothing of the hook's; the journal names it before it runs.
  spawn_as_owner(sockhook_program(holder.program, ctx.self_exe), std::move(sock), std::move(args),
                 step.owner, step.owner_gid, "the context holder for " + lend.label(),
                 lend.recorder(), report_write);
  report_write.reset();
  // The holder says "ok" once its server serves the socket, or why it could not (PipeWire
  // not answering; a compositor that offers no security context, or is itself sandboxed:
  // "nested"); it bounds its own waits for the server, and so does this one (a holder
  // stopped by its owner says nothing).
  std::string said = read_report(report_read);
  if (said != "ok") throw Error(said);
}

}  // namespace

void run_step(SocketRun& run, const StartContext& step) {
  auto what = std::string("cannot start a ") + holder_of(step).server + " security context on " +
              step.listen_path;
  if (auto why = unavailable(step)) throw Error(what + ": " + *why);
  in_context(what, [&] {
    ServedLend lend(run, step.listen_path, step.owner);
    launch(lend, run.lend_dir, step, run.ctx, run.qemu_gid);
  });
}

UndoProblem restart_context(Transaction& tx, std::size_t index, const StartContext& step,
                            const ExecContext& ctx, const std::string& label, gid_t qemu_gid) {
  auto what = std::string("cannot restart the ") + holder_of(step).server +
              " security context on " + step.listen_path;
  if (auto why = unavailable(step)) return what + ": " + *why;
  // The old holder (if it still runs) and its socket go first: the server served that socket
  // only while the holder held close_fd, so its clients are gone with it.
  return relaunch(tx, index, label, step.listen_path, what,
                  [&](ServedLend& lend, const Fd& dir) { launch(lend, dir, step, ctx, qemu_gid); });
}

UndoProblem restart_served(Transaction& tx, std::size_t index, const std::vector<Step>& steps,
                           const ExecContext& ctx, const std::string& label, gid_t qemu_gid) {
  const auto entry = base_of(tx.journal().entries.at(index));
  const Step* serving = serving_step(steps, entry.path);
  if (const auto* proxy = serving ? std::get_if<StartProxy>(serving) : nullptr)
    return restart_proxy(tx, index, *proxy, ctx, label, qemu_gid);
  const auto* context = serving ? std::get_if<StartContext>(serving) : nullptr;
  if (!context) return std::nullopt;
  if (auto problem = restart_context(tx, index, *context, ctx, label, qemu_gid)) return problem;
  if (!context->private_socket()) return std::nullopt;
  // The proxy in front of it holds the old socket, which nothing serves now: it starts again
  // on the new one (S10: it alone reaches the context socket).
  for (const auto& st : steps) {
    const auto* p = std::get_if<StartProxy>(&st);
    if (!p || !p->context_source() || p->source != context->listen_path) continue;
    const auto& entries = tx.journal().entries;
    for (std::size_t j = 0; j < entries.size(); ++j)
      if (const auto* proxy = std::get_if<ProxyStarted>(&entries[j]);
          proxy && proxy->socket == entry.socket && proxy->path == p->listen_path)
        return restart_proxy(tx, j, *p, ctx, label, qemu_gid);
  }
  return std::nullopt;
}

}  // namespace sockhook
