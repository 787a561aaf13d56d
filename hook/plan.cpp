#include "plan.hpp"

#include <sstream>

#include <nlohmann/json.hpp>

#include "confinement.hpp"
#include "error.hpp"

namespace sockhook {
namespace {

std::string dirname(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// Whether the domain XML already gives QEMU `need`, through qemu:env or a native attribute.
/// If the domain sets the variable to another value, `need.conflict` says so.
void check_provided(EnvNeed& need, const DomainInfo& domain, const Plugin& plugin,
                    const Variables& vars) {
  for (const auto& [name, value] : domain.qemu_env) {
    if (name != need.name) continue;
    if (value == need.value) {
      need.provided = true;
      need.provided_by = "qemu:env";
      return;
    }
    need.conflict = "the domain sets " + name + "=" + value + " but this lend needs " + need.name +
                    "=" + need.value;
    return;
  }
  for (const auto& attr : plugin.audio) {
    if (attr.covers != need.name) continue;
    auto wanted = expand(attr.value, vars);
    for (const auto& backend : domain.audio) {
      if (backend.type != attr.audio_type) continue;
      for (const auto& [name, value] : backend.attributes) {
        if (name == attr.attribute && value == wanted) {
          need.provided = true;
          need.provided_by = "<audio type='" + attr.audio_type + "' " + attr.attribute + "=...>";
          return;
        }
      }
    }
  }
}

/// The directories from the runtime dir down to the socket's parent: the ones an acl or
/// group lend may need to make traversable. Never above the runtime dir: those belong to root.
std::vector<std::string> traversal_dirs(const std::string& runtime_dir, const std::string& source) {
  std::vector<std::string> dirs{runtime_dir};
  auto rest = source.substr(runtime_dir.size() + 1);
  std::string dir = runtime_dir;
  for (auto slash = rest.find('/'); slash != std::string::npos; slash = rest.find('/')) {
    dir += "/" + rest.substr(0, slash);
    dirs.push_back(dir);
    rest = rest.substr(slash + 1);
  }
  return dirs;
}

class Planner {
 public:
  explicit Planner(const PlanInputs& in) : in_(in), domain_(*in.domain) {}

  Plan run() {
    plan_.domain = domain_.name;
    plan_.uuid = domain_.uuid;
    plan_.qemu = in_.qemu;
    bool domain_ok = true;
    for (const auto& d : domain_.diagnostics) {
      if (!d.error) {
        plan_.warnings.push_back({d.socket, d.message, ""});
      } else if (d.required) {
        plan_.errors.push_back({d.socket, d.message, ""});
        if (d.socket.empty()) domain_ok = false;
      } else {
        plan_.warnings.push_back({d.socket, d.message + " (optional socket skipped)", ""});
      }
    }
    if (!domain_ok) return std::move(plan_);
    plan_.lend_dir = in_.paths.lend_dir(domain_.uuid);
    for (const auto& req : domain_.sockets) plan_socket(req);
    bool needs_dir = false;
    for (const auto& s : plan_.sockets) {
      needs_dir |= s.method == Method::kBind || s.method == Method::kProxy;
      for (const auto& step : s.steps) needs_dir |= std::holds_alternative<CopyFile>(step);
    }
    if (needs_dir) plan_.domain_steps.push_back(MakeLendDir{plan_.lend_dir, in_.qemu.uid});
    return std::move(plan_);
  }

 private:
  void fail(const SocketRequest& req, const std::string& why, const std::string& hint = "") {
    if (req.required) {
      plan_.errors.push_back({req.name, why, hint});
    } else {
      plan_.warnings.push_back({req.name, why + " (optional socket skipped)", hint});
    }
  }

  void plan_socket(const SocketRequest& req) {
    const Plugin* plugin = in_.plugins->find(req.plugin);
    if (!plugin) return fail(req, in_.plugins->why_missing(req.plugin));
    auto found = in_.owners.find(req.owner);
    if (found == in_.owners.end() || !found->second)
      return fail(req, "owner '" + req.owner + "' is not a user on this host");
    const User& owner = *found->second;
    if (auto refusal = owner_refusal(owner, req.owner, in_.uid_min)) return fail(req, *refusal);
    if (!in_.policy->allows(domain_.uuid, owner.name, owner.uid, plugin->name))
      return fail(req,
                  "the policy does not allow " + owner.name + " to lend '" + plugin->name +
                      "' to this domain",
                  "sockhook policy allow --domain " + domain_.uuid + " --owner " + owner.name +
                      " --plugin " + plugin->name);

    SocketPlan sp;
    sp.request = req;
    sp.plugin_file = plugin->file;
    sp.owner = owner;
    auto runtime_dir = in_.paths.runtime_dir(owner.uid);
    bool absolute = plugin->socket_path.front() == '/';
    sp.source = socket_place(*plugin, owner, req.method, in_.paths, plan_.lend_dir).source;
    auto facts_it = in_.sources.find(req.name);
    SourceFacts facts = facts_it == in_.sources.end() ? SourceFacts{} : facts_it->second;

    sp.method = req.method;
    if (req.method == Method::kAuto) {
      if (!facts.exists) {
        sp.method = Method::kBind;
        sp.method_note =
            "auto: bind if the socket exists at prepare, otherwise proxy "
            "(could not look now; planned as bind)";
      } else {
        sp.method = *facts.exists ? Method::kBind : Method::kProxy;
        sp.method_note = *facts.exists ? "auto: the socket exists, so bind"
                                       : "auto: the socket does not exist yet, so proxy";
      }
    }
    sp.target = socket_place(*plugin, owner, sp.method, in_.paths, plan_.lend_dir).target;
    // Two sockets of one domain must not land on one file (e.g. pipewire and jack).
    for (const auto& other : plan_.sockets)
      if (other.target == sp.target)
        return fail(req, "its target " + sp.target + " is already used by socket '" +
                             other.request.name + "'");
    int wait = req.wait_seconds.value_or(kDefaultWaitSeconds);
    auto base = absolute ? std::string("/") : runtime_dir;
    auto relative = absolute ? sp.source.substr(1) : plugin->socket_path;
    const auto& qemu = in_.qemu;

    switch (sp.method) {
      case Method::kBind:
        sp.steps.push_back(VerifySource{base, relative, owner.uid, wait});
        sp.steps.push_back(CreateTarget{sp.target});
        sp.steps.push_back(BindMount{sp.source, sp.target});
        sp.steps.push_back(GrantAcl{sp.source, qemu.uid, "rw", true, false});
        break;
      case Method::kProxy:
        sp.steps.push_back(
            StartProxy{sp.target, sp.source, owner.uid, owner.gid, qemu.uid, qemu.gid});
        break;
      case Method::kAcl:
      case Method::kGroup:
        if (absolute)
          return fail(req, "methods acl and group need a socket in the runtime directory");
        sp.steps.push_back(VerifySource{base, relative, owner.uid, wait});
        for (const auto& dir : traversal_dirs(runtime_dir, sp.source))
          sp.steps.push_back(GrantAcl{dir, qemu.uid, "x", true, true});
        if (sp.method == Method::kAcl) {
          sp.steps.push_back(GrantAcl{sp.source, qemu.uid, "rw", true, false});
        } else {
          sp.steps.push_back(ChangeGroup{sp.source, qemu.gid});
        }
        sp.warnings.push_back({"",
                               "method " + std::string(to_string(sp.method)) + " lets " +
                                   qemu.user + " traverse " + runtime_dir +
                                   ", so every entry there that its own mode allows becomes "
                                   "reachable",
                               ""});
        sp.warnings.push_back(
            {"", original_path_apparmor_warning(std::string(to_string(sp.method)), sp.source), ""});
        if (facts.nearby) {
          for (const auto& entry : *facts.nearby)
            if (entry != sp.source) sp.exposes.push_back(entry);
        } else {
          sp.warnings.push_back({"",
                                 "could not list " + runtime_dir +
                                     " to show what else becomes reachable (run as root or as " +
                                     owner.name + ")",
                                 ""});
        }
        break;
      case Method::kAuto:
        break;
    }

    auto vars = socket_variables(in_.paths, owner, sp.target, plan_.lend_dir);
    // Companion files always go to the domain's own lend directory, for every method.
    for (const auto& file : plugin->files) {
      if (file.content) {
        sp.steps.push_back(CopyFile{"", plan_.lend_dir + "/" + file.target, owner.uid, qemu.uid,
                                    kMaxCompanionBytes, false, file.content});
        continue;
      }
      std::string src = file.path.starts_with("~/")  ? owner.home + file.path.substr(1)
                        : file.path.starts_with("/") ? file.path
                                                     : runtime_dir + "/" + file.path;
      sp.steps.push_back(CopyFile{src, plan_.lend_dir + "/" + file.target, owner.uid, qemu.uid,
                                  kMaxCompanionBytes, file.optional});
    }
    sp.env = socket_environment(*plugin, domain_, vars);
    for (const auto& need : sp.env) {
      if (!need.conflict.empty()) {
        sp.warnings.push_back({"", need.conflict, ""});
      } else if (!need.provided) {
        sp.warnings.push_back({"",
                               "the domain XML does not give QEMU " + need.name + "=" + need.value,
                               "sockhook annotate " + domain_.name + " --plugin " + plugin->name +
                                   " --owner " + owner.name});
      }
    }
    plan_.sockets.push_back(std::move(sp));
  }

  const PlanInputs& in_;
  const DomainInfo& domain_;
  Plan plan_;
};

}  // namespace

Plan make_plan(const PlanInputs& in) { return Planner(in).run(); }

std::optional<std::string> owner_refusal(const User& owner, const std::string& written,
                                         uid_t uid_min) {
  // S2: only regular users' sockets; root and system users are always refused.
  if (owner.uid == 0)
    return "owner '" + written + "' is root; sockhook lends only regular users' sockets";
  if (owner.uid < uid_min)
    return "owner '" + written + "' (uid " + std::to_string(owner.uid) +
           ") is a system user; regular users start at uid " + std::to_string(uid_min);
  return std::nullopt;
}

SocketPlace socket_place(const Plugin& plugin, const User& owner, Method method, const Paths& paths,
                         const std::string& lend_dir) {
  SocketPlace place;
  bool absolute = plugin.socket_path.front() == '/';
  place.source =
      absolute ? plugin.socket_path : paths.runtime_dir(owner.uid) + "/" + plugin.socket_path;
  // bind and proxy lend a name in the lend directory; acl and group open the socket itself.
  bool lent_copy = method == Method::kBind || method == Method::kProxy;
  place.target = lent_copy ? lend_dir + "/" + plugin.socket_target : place.source;
  return place;
}

Variables socket_variables(const Paths& paths, const User& owner, const std::string& target,
                           const std::string& lend_dir) {
  return {paths.runtime_dir(owner.uid),
          owner.home,
          owner.name,
          std::to_string(owner.uid),
          dirname(target),
          target,
          lend_dir};
}

std::vector<EnvNeed> socket_environment(const Plugin& plugin, const DomainInfo& domain,
                                        const Variables& vars) {
  std::vector<EnvNeed> out;
  for (const auto& env : plugin.env) {
    EnvNeed need{env.name, expand(env.value, vars), false, "", ""};
    check_provided(need, domain, plugin, vars);
    out.push_back(std::move(need));
  }
  return out;
}

std::string Problem::text() const {
  auto line = socket.empty() ? message : socket + ": " + message;
  return hint.empty() ? line : line + " (hint: " + hint + ")";
}

std::vector<std::string> texts(const std::vector<Problem>& problems) {
  std::vector<std::string> out;
  for (const auto& p : problems) out.push_back(p.text());
  return out;
}

std::string format_plan(const Plan& plan) {
  std::ostringstream out;
  out << "domain " << plan.domain << " (uuid " << (plan.uuid.empty() ? "?" : plan.uuid) << ")\n";
  out << "QEMU runs as " << plan.qemu.user << ":" << plan.qemu.group << " (uid " << plan.qemu.uid
      << ", gid " << plan.qemu.gid << ", from " << plan.qemu.source << ")\n";
  int n = 0;
  for (const auto& step : plan.domain_steps) out << "  " << ++n << ". " << describe(step) << "\n";
  for (const auto& s : plan.sockets) {
    out << "\nsocket " << s.request.name << ": plugin " << s.request.plugin << ", owner "
        << s.owner.name << " (uid " << s.owner.uid << "), method " << to_string(s.method)
        << (s.request.required ? ", required" : ", optional") << "\n";
    if (!s.method_note.empty()) out << "  (" << s.method_note << ")\n";
    out << "  source " << s.source << "\n  target " << s.target << "\n";
    for (const auto& step : s.steps) out << "  " << ++n << ". " << describe(step) << "\n";
    if (!s.env.empty()) out << "  QEMU environment:\n";
    for (const auto& e : s.env)
      out << "    " << e.name << "=" << e.value
          << (e.provided ? "  (provided by " + e.provided_by + ")"
                         : "  (MISSING from the domain XML)")
          << "\n";
    if (!s.exposes.empty()) {
      out << "  also reachable by " << plan.qemu.user
          << " after this grant (if their own mode allows):\n";
      for (const auto& e : s.exposes) out << "    " << e << "\n";
    }
    for (const auto& w : s.warnings) out << "  warning: " << w.text() << "\n";
  }
  if (plan.sockets.empty() && plan.errors.empty()) out << "\nnothing to lend\n";
  if (!plan.warnings.empty() || !plan.errors.empty()) out << "\n";
  for (const auto& w : plan.warnings) out << "warning: " << w.text() << "\n";
  for (const auto& e : plan.errors) out << "error: " << e.text() << "\n";
  return out.str();
}

nlohmann::json plan_to_json(const Plan& plan) {
  using nlohmann::json;
  json j{{"domain", plan.domain},
         {"uuid", plan.uuid},
         {"lend_dir", plan.lend_dir},
         {"qemu",
          {{"user", plan.qemu.user},
           {"group", plan.qemu.group},
           {"uid", plan.qemu.uid},
           {"gid", plan.qemu.gid},
           {"source", plan.qemu.source}}},
         {"steps", json::array()},
         {"sockets", json::array()},
         {"warnings", texts(plan.warnings)},
         {"errors", texts(plan.errors)}};
  for (const auto& step : plan.domain_steps) j["steps"].push_back(to_json(step));
  for (const auto& s : plan.sockets) {
    json sj{{"name", s.request.name},
            {"plugin", s.request.plugin},
            {"owner", s.owner.name},
            {"owner_uid", s.owner.uid},
            {"method", to_string(s.method)},
            {"required", s.request.required},
            {"source", s.source},
            {"target", s.target},
            {"steps", json::array()},
            {"env", json::array()},
            {"exposes", s.exposes},
            {"warnings", texts(s.warnings)}};
    for (const auto& step : s.steps) sj["steps"].push_back(to_json(step));
    for (const auto& e : s.env)
      sj["env"].push_back({{"name", e.name},
                           {"value", e.value},
                           {"provided", e.provided},
                           {"provided_by", e.provided_by}});
    j["sockets"].push_back(std::move(sj));
  }
  return j;
}

}  // namespace sockhook
