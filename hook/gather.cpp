#include "gather.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include "error.hpp"
#include "sys/file.hpp"

namespace sockhook {
namespace {

/// Looks (as whoever runs this) whether the source exists and what else lies beside it.
/// Informational only: the executor resolves again, securely, and acts on what it finds then.
SourceFacts probe(const std::string& base, const std::string& relative) {
  SourceFacts facts;
  Fd dir(::open(base.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!dir) return facts;
  struct stat st {};
  if (::fstatat(dir.get(), relative.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    facts.exists = S_ISSOCK(st.st_mode);
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

void gather(Gathered& g, const GatherOptions& options) {
  auto& in = g.inputs;
  g.plugins = load_plugins(options.plugin_dirs, options.trusted_uids);
  g.policy = load_policy(options.policy_path);
  in.domain = &g.domain;
  in.plugins = &g.plugins;
  in.policy = &g.policy;
  in.paths = options.paths;
  in.uids = regular_uid_range();
  in.qemu = resolve_qemu_identity(g.domain.dac, load_qemu_conf(options.qemu_conf_path));
  for (const auto& req : g.domain.sockets) {
    auto [it, fresh] = in.owners.try_emplace(req.owner);
    if (fresh) it->second = lookup_user(req.owner);
    const auto* plugin = g.plugins.find(req.plugin);
    if (!options.probe_sources || !plugin || !it->second) continue;
    bool absolute = plugin->socket_path.front() == '/';
    auto base = absolute ? std::string("/") : options.paths.runtime_dir(it->second->uid);
    auto relative = absolute ? plugin->socket_path.substr(1) : plugin->socket_path;
    in.sources[req.name] = probe(base, relative);
  }
}

}  // namespace sockhook
