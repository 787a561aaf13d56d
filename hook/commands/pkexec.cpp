#include "commands/pkexec.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/error.hpp"
#include "base/log.hpp"
#include "sys/fd.hpp"
#include "sys/file.hpp"
#include "sys/pidfd.hpp"

namespace sockhook {

namespace {

/// Writes all of `text` to stderr (EINTR and short writes retried; a closed stderr drops it).
void pass_on(std::string_view text) {
  while (!text.empty()) {
    auto n = retry_eintr([&] { return ::write(STDERR_FILENO, text.data(), text.size()); });
    if (n <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

/// pkexec's text as one line: its lines joined by "; ", blank ones dropped.
std::string joined(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    auto end = text.find('\n');
    auto line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out;
}

bool has(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

/// The most of pkexec's stderr held back to be judged: its refusals are a few lines. Past
/// this, the text cannot be one of them, and it is passed on as it comes.
constexpr std::size_t kHeldBytes = 16 * 1024;
/// What is read from the pipe once pkexec's program has ended: a process it left behind may
/// hold the pipe open and keep writing; this much and no more is passed on.
constexpr std::size_t kDrainBytes = 1024 * 1024;

}  // namespace

std::optional<std::string> pkexec_refusal(const PkexecAsk& ask, uid_t uid, int code,
                                          std::string_view text) {
  const std::string admin = " (an administrator decides, see /etc/polkit-1/rules.d); ";
  const std::string for_uid = ask.action + " for uid " + std::to_string(uid);
  // pkexec 0.105 to 126 alike (src/programs/pkexec.c): 126 is only ever the dismissal, 127
  // every other failure, each with its text on stderr.
  if (code == 126 && has(text, "Request dismissed"))
    return ask.who + ": the authentication for " + for_uid + " was dismissed; " + ask.undone;
  if (code != 127) return std::nullopt;
  if (has(text, "Not authorized"))
    return ask.who + ": polkit did not authorise " + for_uid + admin + ask.undone;
  // polkit would allow it after a password, and pkexec had no terminal to ask it on (nor an
  // agent of the desktop's): a refusal all the same, in a non-interactive session.
  if (has(text, "textual authentication agent") || has(text, "local authentication agent") ||
      has(text, "No authentication agent found"))
    return ask.who + ": polkit did not authorise " + for_uid +
           " without a password, and no terminal or authentication agent can ask for it" + admin +
           ask.undone;
  return std::nullopt;
}

int run_through_pkexec(const PkexecAsk& ask, const std::vector<std::string>& args) {
  if (::access(kPkexec, X_OK) != 0) {
    print_error(ask.who + ": cannot ask polkit: " + kPkexec +
                " is not installed (Debian: apt install pkexec); " + ask.undone);
    return 1;
  }
  // This program's own path: the polkit action names it (exec.path), so pkexec must be given
  // this very file, not whatever `sockhook` the owner's PATH finds first.
  auto self = self_exe_path();
  if (!self) {
    print_error(ask.who + ": cannot read /proc/self/exe: " + std::strerror(errno));
    return 1;
  }
  std::vector<std::string> all = {kPkexec, *self};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);

  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    print_error(ask.who + ": cannot make a pipe for pkexec: " + std::strerror(errno));
    return 1;
  }
  Fd from_pkexec(ends[0]), to_parent(ends[1]);
  std::fflush(nullptr);
  // A child, not an exec: pkexec's subject is its parent, this process of the owner's, and its
  // stderr comes back here to be judged.
  pid_t pid = ::fork();
  if (pid < 0) {
    print_error(ask.who + ": cannot run " + kPkexec + ": " + std::strerror(errno));
    return 1;
  }
  if (pid == 0) {
    if (::dup2(to_parent.get(), STDERR_FILENO) < 0) ::_exit(127);
    ::execv(kPkexec, argv.data());
    std::fprintf(stderr, "cannot run %s: %s\n", kPkexec, std::strerror(errno));
    ::_exit(127);
  }
  to_parent.reset();
  Fd child = pidfd_open(pid);

  // Read pkexec's stderr until it closes, or until its program has ended (the pidfd) and what
  // it wrote is drained. No timeout: pkexec may be asking the owner for a password.
  std::string held;
  bool passing = false;
  auto take = [&](std::string_view chunk) {
    if (passing) return pass_on(chunk);
    held.append(chunk);
    if (held.size() <= kHeldBytes) return;
    pass_on(held);
    held.clear();
    passing = true;
  };
  char buf[4096];
  for (;;) {
    pollfd fds[2] = {{from_pkexec.get(), POLLIN, 0}, {child.get(), POLLIN, 0}};
    if (::poll(fds, child ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) {
      auto n = ::read(from_pkexec.get(), buf, sizeof buf);
      if (n > 0) {
        take({buf, static_cast<std::size_t>(n)});
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;  // EOF: pkexec and its program are done with stderr
    }
    if (child && fds[1].revents != 0) {
      ::fcntl(from_pkexec.get(), F_SETFL, O_NONBLOCK);
      std::size_t drained = 0;
      while (drained < kDrainBytes) {
        auto n = retry_eintr([&] { return ::read(from_pkexec.get(), buf, sizeof buf); });
        if (n <= 0) break;
        drained += static_cast<std::size_t>(n);
        take({buf, static_cast<std::size_t>(n)});
      }
      break;
    }
  }
  int status = 0;
  if (retry_eintr([&] { return ::waitpid(pid, &status, 0); }) < 0) {
    pass_on(held);
    print_error(ask.who + ": cannot wait for pkexec: " + std::strerror(errno));
    return 1;
  }
  if (!WIFEXITED(status)) {
    pass_on(held);
    print_error(ask.who + ": pkexec or its program was killed (signal " +
                std::to_string(WTERMSIG(status)) + "); it may not have finished");
    return 1;
  }
  const int code = WEXITSTATUS(status);
  if (!passing) {
    if (auto line = pkexec_refusal(ask, ::getuid(), code, held)) {
      print_error(*line);
      return 1;
    }
    // pkexec's own failure (126 and 127 are never sockhook's exit codes): its text, kept, in
    // sockhook's one line.
    if (code == 126 || code == 127) {
      auto text = joined(held);
      print_error(ask.who + ": cannot ask polkit for " + ask.action + ": pkexec: " +
                  (text.empty() ? "exit " + std::to_string(code) : text) + "; " + ask.undone);
      return 1;
    }
  }
  pass_on(held);  // the program's own lines (sockhook's errors), as they were
  return code;
}

User caller_from_pkexec(std::string_view command) {
  const char* text = std::getenv("PKEXEC_UID");
  if (::geteuid() != 0 || !text || !*text)
    throw Error(std::string(command) + " is run by pkexec only (sockhook grant, revoke and " +
                "status run it as the owner)");
  std::string uid(text);
  if (uid.find_first_not_of("0123456789") != std::string::npos)
    throw Error("PKEXEC_UID '" + uid + "' is not a uid");
  auto user = lookup_user(uid);
  if (!user) throw Error("the caller (uid " + uid + ") is not a user on this host");
  // Root and system users lend nothing of their own (the planner refuses such owners too).
  if (!regular_uid_range().contains(user->uid))
    throw Error("the caller '" + user->name +
                "' is not a regular user, and only regular users lend their sockets "
                "(root uses 'sockhook annotate --owner' and 'sockhook status')");
  return *user;
}

}  // namespace sockhook
