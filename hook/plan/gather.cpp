#include "plan/gather.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string_view>

#include "base/build.hpp"
#include "base/error.hpp"
#include "host/compositor.hpp"
#include "host/confinement.hpp"
#include "sys/acl.hpp"
#include "sys/file.hpp"
#include "sys/resolve.hpp"
#include "sys/users.hpp"

namespace sockhook {
namespace {

/// Looks (as whoever runs this) whether the source exists and what else lies beside it.
/// Informational only: the executor resolves again, securely, and acts on what it finds then.
/// Whom else a grant of `perms` to QEMU on `fd` would give rights to; empty when QEMU has them
/// already (no grant then). Informational too: acl_grant_user refuses again when it acts.
std::optional<std::vector<std::string>> gains_at(const Fd& fd, const QemuIdentity& qemu,
                                                 Perms perms) {
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) return std::nullopt;
  return value_or_none([&] {
    auto proc = fd.proc_path();
    if (acl_allows(proc, st, qemu.uid, groups_of_uid(qemu.uid, qemu.gid), perms))
      return std::vector<std::string>{};
    return acl_grant_gains(proc, qemu.uid, perms);
  });
}

// Beneath the base only, no symlink followed and no mount crossed: the probe looks at nothing
// the executor would refuse to resolve (issue 22: a plain fstatat followed an intermediate
// symlink as root, and told the owner whether a root-only path existed).
constexpr unsigned long long kBeneath = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV;
// The names kept of one directory: enough to review, bounded whatever the owner puts there
// (issue 22: a runtime directory of 150,000 entries cost the hook 8.2 s and 1.36 GB).
constexpr std::size_t kMaxListed = 256;

/// Adds up to kMaxListed names of the directory `dir` (an O_RDONLY fd, taken) as
/// "dir_path/name" to `out`; true if it holds more, which are neither read nor kept.
bool list_bounded(Fd dir, const std::string& dir_path, std::vector<std::string>& out) {
  Dir d(::fdopendir(dir.get()));
  if (!d) return false;
  dir.release();  // owned by `d` now
  std::size_t listed = 0;
  while (auto* e = ::readdir(d.get())) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    if (listed++ == kMaxListed) return true;
    out.push_back(dir_path + "/" + std::string(n));
  }
  return false;
}

/// open_socket_base for a look that is only informational: an invalid Fd where it refuses.
Fd try_open_socket_base(const std::string& base) {
  auto fd = value_or_none([&] { return open_socket_base(base); });
  return fd ? std::move(*fd) : Fd();
}

SourceFacts probe(const std::string& base, const std::string& relative, const QemuIdentity& qemu) {
  SourceFacts facts;
  // The owner's runtime directory is admitted by a bounded child (R6): one on a FUSE file
  // system is not looked at, and the executor's resolution refuses it in one line.
  Fd root = try_open_socket_base(base);
  if (!root) return facts;
  // O_PATH, resolved beneath the base: reads the ACL of what is there, changes nothing.
  auto sock = openat2_fd(root.get(), relative, O_PATH | O_NOFOLLOW | O_CLOEXEC, kBeneath);
  struct stat st {};
  if (sock && ::fstat(sock.get(), &st) == 0) {
    facts.exists = S_ISSOCK(st.st_mode);
    if (*facts.exists) facts.socket_gains = gains_at(sock, qemu, 6);
  } else if (!sock && errno == ENOENT) {
    facts.exists = false;
  }
  // Every directory on the way down gets a traversal grant, so list each of them (bounded).
  std::vector<std::string> nearby;
  std::string rel_dir = ".";
  std::string dir_path = base;
  std::string rest = relative;
  for (;;) {
    auto d =
        openat2_fd(root.get(), rel_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW, kBeneath);
    if (!d) {
      if (rel_dir == ".") return facts;  // the base cannot be listed: nothing to show
      break;
    }
    if (auto gains = gains_at(d, qemu, 1); gains && !gains->empty())
      facts.dir_gains.emplace_back(dir_path, std::move(*gains));
    if (list_bounded(std::move(d), dir_path, nearby)) facts.unlisted_dirs.push_back(dir_path);
    auto slash = rest.find('/');
    if (slash == std::string::npos) break;
    auto name = rest.substr(0, slash);
    rel_dir = rel_dir == "." ? name : rel_dir + "/" + name;
    dir_path += "/" + name;
    rest = rest.substr(slash + 1);
  }
  facts.nearby = std::move(nearby);
  return facts;
}

/// The paths of the listening Unix sockets in this network namespace (/proc/net/unix; a
/// listener has __SO_ACCEPTCON, 0x10000, in its flags); nullopt if it cannot be read.
std::optional<std::set<std::string>> listening_unix_paths() {
  auto text = try_read_file("/proc/net/unix", 16 * 1024 * 1024);
  if (!text) return std::nullopt;
  std::set<std::string> paths;
  std::istringstream lines(*text);
  std::string line;
  std::getline(lines, line);  // the header
  while (std::getline(lines, line)) {
    // Num RefCount Protocol Flags Type St Inode Path: the path is all after the 7th field.
    std::istringstream fields(line);
    std::string num, refs, protocol, flags, type, state, inode;
    fields >> num >> refs >> protocol >> flags >> type >> state >> inode;
    if (!fields) continue;
    unsigned long bits = std::strtoul(flags.c_str(), nullptr, 16);
    std::string path;
    std::getline(fields >> std::ws, path);
    if ((bits & 0x10000UL) && path.starts_with("/")) paths.insert(path);
  }
  return paths;
}

/// What is at each of `candidates` (a plugin's paths) for `owner`; empty when the base
/// cannot be opened (then nobody could look). Informational, as probe is: the executor
/// resolves the chosen one again, securely.
std::vector<CandidateFacts> look_at_candidates(const std::vector<std::string>& candidates,
                                               const std::string& runtime_dir, uid_t owner) {
  const auto listening = listening_unix_paths();
  std::vector<CandidateFacts> out;
  for (const auto& path : candidates) {
    bool absolute = path.front() == '/';
    auto base = absolute ? std::string("/") : runtime_dir;
    // Not looked at (refused or absent): the plan keeps the first candidate, and the executor's
    // resolution says why in one line.
    Fd root = try_open_socket_base(base);
    if (!root) return {};
    CandidateFacts f{path, false, std::nullopt, 0};
    auto sock = openat2_fd(root.get(), absolute ? path.substr(1) : path,
                           O_PATH | O_NOFOLLOW | O_CLOEXEC, kBeneath);
    struct stat st {};
    if (sock && ::fstat(sock.get(), &st) == 0) {
      f.owned_socket = S_ISSOCK(st.st_mode) && st.st_uid == owner;
      f.mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    }
    if (listening) f.listening = listening->count(absolute ? path : runtime_dir + "/" + path) > 0;
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

void load_rules(Gathered& g, const GatherOptions& options) {
  g.plugins = load_plugins(options.plugin_dirs, options.trusted_uids);
  g.policy = load_policy(options.policy_path);
}

std::optional<Problem> policy_refusal(const Gathered& g) {
  const auto& domain = g.domain;
  if (g.policy.allows_any(domain.uuid)) return std::nullopt;
  // A domain-level error of the XML (no UUID, a bad name) is the line: no policy can allow
  // such a domain, and the line says only what the XML says.
  for (const auto& d : domain.diagnostics)
    if (d.error && d.required && d.socket.empty()) return Problem{"", d.message, ""};
  // Whatever the XML holds, the one line names the policy and the first socket (a required
  // one if there is one), and nothing found on the host.
  const auto& sockets = domain.sockets;
  auto first = std::find_if(sockets.begin(), sockets.end(),
                            [](const SocketRequest& r) { return r.required; });
  if (first == sockets.end()) first = sockets.begin();
  if (first == sockets.end()) return Problem{"", "the policy allows nothing for this domain", ""};
  auto user = lookup_user(first->owner);
  auto owner = user ? user->name : first->owner;
  auto others = sockets.size() - 1;
  std::string also;
  if (others == 1) also = " (nor its other socket)";
  if (others > 1) also = " (nor any of its " + std::to_string(others) + " other sockets)";
  Problem p{first->name,
            "the policy does not allow " + owner + " to lend '" + first->plugin +
                "' to this domain" + also,
            ""};
  if (is_valid_uuid(domain.uuid))
    p.hint = "sockhook policy allow --domain " + domain.uuid + " --owner " + owner + " --plugin " +
             first->plugin;
  return p;
}

void gather(Gathered& g, const GatherOptions& options) {
  load_rules(g, options);
  gather_host(g, options);
}

void gather_host(Gathered& g, const GatherOptions& options) {
  auto& in = g.inputs;
  in.domain = &g.domain;
  in.plugins = &g.plugins;
  in.policy = &g.policy;
  in.paths = options.paths;
  in.uids = regular_uid_range();
  in.apparmor_refuses_original_path =
      libvirt_confines_with_apparmor() && apparmor_mediates_unix_sockets();
  in.vm_separation_gap = vm_lend_separation_gap();
  auto conf = load_qemu_conf(options.qemu_conf_path);
  in.qemu = resolve_qemu_identity(g.domain.dac, conf);
  // Root's answer to "who may receive this domain's lends": the configured identity, and
  // those the policy names for this domain (issue 9: not whoever writes the XML).
  // None resolves: only a label names QEMU's identity, and the policy must allow it.
  in.configured_qemu = value_or_none([&] { return resolve_qemu_identity(std::nullopt, conf); });
  in.allowed_qemu =
      resolve_allowed_identities(g.policy.qemu_identities(g.domain.uuid), in.identity_problems);
  for (const auto& req : g.domain.sockets) {
    auto [it, fresh] = in.owners.try_emplace(req.owner);
    if (fresh) it->second = lookup_user(req.owner);
    const auto* plugin = g.plugins.find(req.plugin);
    if (!options.probe_sources || !plugin || !it->second) continue;
    // An owner's files are looked at only once root has allowed this socket (issue 22).
    const auto& owner = *it->second;
    if (!options.probe_unallowed &&
        !g.policy.allows(g.domain.uuid, owner.name, owner.uid, plugin->name))
      continue;
    auto runtime_dir = options.paths.runtime_dir(owner.uid);
    // Several places (wayland-0 or wayland-1): probe the one the planner will choose.
    auto path = plugin->socket_path;
    std::vector<CandidateFacts> seen;
    if (auto candidates = plugin->candidates(); candidates.size() > 1) {
      seen = look_at_candidates(candidates, runtime_dir, owner.uid);
      path = choose_candidate(candidates, seen, owner.name).path;
    }
    bool absolute = path.front() == '/';
    auto base = absolute ? std::string("/") : runtime_dir;
    auto relative = absolute ? path.substr(1) : path;
    auto& facts = in.sources[req.name] = probe(base, relative, in.qemu);
    facts.candidates = std::move(seen);
    // Method context on a compositor: whether it offers a security context decides whether
    // `context` is refused now and whether `auto` picks it. Asked as the owner, bounded.
    bool may_use_context = req.method == Method::kAuto || req.method == Method::kContext;
    if (plugin->context == "wayland" && may_use_context && !wayland_context_unavailable()) {
      if (facts.exists == true) {
        auto answer =
            ask_security_context(wayland_holder_path(), absolute ? path : runtime_dir + "/" + path,
                                 owner.uid, owner.gid);
        facts.security_context = answer.offered;
        facts.security_context_note = answer.note;
      } else {
        facts.security_context_note =
            facts.exists ? "the socket does not exist now" : "could not look at the socket";
      }
    }
  }
}

}  // namespace sockhook
