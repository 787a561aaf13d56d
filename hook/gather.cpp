#include "gather.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>

#include <algorithm>

#include "error.hpp"
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
  try {
    auto proc = fd.proc_path();
    if (acl_allows(proc, st, qemu.uid, groups_of_uid(qemu.uid, qemu.gid), perms))
      return std::vector<std::string>{};
    return acl_grant_gains(proc, qemu.uid, perms);
  } catch (const Error&) {
    return std::nullopt;
  }
}

SourceFacts probe(const std::string& base, const std::string& relative, const QemuIdentity& qemu) {
  SourceFacts facts;
  Fd dir(::open(base.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!dir) return facts;
  struct stat st {};
  if (::fstatat(dir.get(), relative.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    facts.exists = S_ISSOCK(st.st_mode);
    if (*facts.exists) {
      // O_PATH, no symlinks followed: reads the ACL of what is there, changes nothing.
      auto sock = openat2_fd(dir.get(), relative, O_PATH | O_NOFOLLOW | O_CLOEXEC,
                             RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH);
      facts.socket_gains = gains_at(sock, qemu, 6);
    }
  } else if (errno == ENOENT) {
    facts.exists = false;
  }
  Fd listable(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!listable) return facts;
  std::vector<std::string> nearby;
  // Every directory on the way down gets a traversal grant, so list each of them.
  std::string dir_path = base;
  std::string rest = relative;
  for (;;) {
    Fd d(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!d) break;
    if (auto gains = gains_at(d, qemu, 1); gains && !gains->empty())
      facts.dir_gains.emplace_back(dir_path, std::move(*gains));
    for (const auto& name : list_directory(d)) nearby.push_back(dir_path + "/" + name);
    auto slash = rest.find('/');
    if (slash == std::string::npos) break;
    dir_path += "/" + rest.substr(0, slash);
    rest = rest.substr(slash + 1);
  }
  facts.nearby = std::move(nearby);
  return facts;
}

}  // namespace

void load_rules(Gathered& g, const GatherOptions& options) {
  g.plugins = load_plugins(options.plugin_dirs, options.trusted_uids);
  g.policy = load_policy(options.policy_path);
}

std::optional<Problem> policy_refusal(const Gathered& g) {
  const auto& domain = g.domain;
  if (g.policy.allows_any(domain.uuid)) return std::nullopt;
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
  auto conf = load_qemu_conf(options.qemu_conf_path);
  in.qemu = resolve_qemu_identity(g.domain.dac, conf);
  // Root's answer to "who may receive this domain's lends": the configured identity, and
  // those the policy names for this domain (issue 9: not whoever writes the XML).
  try {
    in.configured_qemu = resolve_qemu_identity(std::nullopt, conf);
  } catch (const Error&) {
    in.configured_qemu.reset();  // only a label names QEMU's identity: the policy must allow it
  }
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
    bool absolute = plugin->socket_path.front() == '/';
    auto base = absolute ? std::string("/") : options.paths.runtime_dir(owner.uid);
    auto relative = absolute ? plugin->socket_path.substr(1) : plugin->socket_path;
    in.sources[req.name] = probe(base, relative, in.qemu);
  }
}

}  // namespace sockhook
