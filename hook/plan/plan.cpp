#include "plan/plan.hpp"

#include <sstream>

#include <nlohmann/json.hpp>

#include "base/build.hpp"
#include "base/error.hpp"
#include "host/confinement.hpp"
#include "host/domain_cgroup.hpp"
#include "sys/acl.hpp"

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

void format_socket(std::ostream& out, const Plan& plan, const SocketPlan& s, int& n,
                   const std::string& mark);

class Planner {
 public:
  explicit Planner(const PlanInputs& in) : in_(in), domain_(*in.domain) {}

  Plan run() {
    plan_.domain = domain_.name;
    plan_.uuid = domain_.uuid;
    plan_.qemu = in_.qemu;
    plan_.qemu_decision = decide_qemu_identity(in_.qemu, in_.configured_qemu, in_.allowed_qemu);
    for (const auto& p : in_.identity_problems) plan_.warnings.push_back({"", p, ""});
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
    MakeLendDir dir{plan_.lend_dir, in_.qemu.uid};
    if (needs_lend_dir(plan_.sockets)) {
      plan_.domain_steps.push_back(dir);
    } else if (needs_lend_dir(plan_.blocked)) {
      plan_.blocked_domain_steps.push_back(dir);
    }
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

  static bool needs_lend_dir(const std::vector<SocketPlan>& sockets) {
    bool needs = false;
    for (const auto& s : sockets) {
      needs |=
          s.method == Method::kBind || s.method == Method::kProxy || s.method == Method::kContext;
      for (const auto& step : s.steps) needs |= std::holds_alternative<CopyFile>(step);
    }
    return needs;
  }

  /// What root has not allowed yet for this socket, each with the command that allows it.
  std::vector<Problem> blockers(const SocketRequest& req, const User& owner,
                                const Plugin& plugin) const {
    std::vector<Problem> out;
    if (!in_.policy->allows(domain_.uuid, owner.name, owner.uid, plugin.name))
      out.push_back({req.name,
                     "the policy does not allow " + owner.name + " to lend '" + plugin.name +
                         "' to this domain",
                     "sockhook policy allow --domain " + domain_.uuid + " --owner " + owner.name +
                         " --plugin " + plugin.name});
    // Who receives the lend is root's choice too: a DAC label in the XML may only name an
    // identity that root configured or allowed for this domain.
    if (plan_.qemu_decision.verdict == IdentityVerdict::kRefused) {
      const auto& q = in_.qemu;
      out.push_back(
          {req.name, "QEMU would run as " + q.text() + ": " + plan_.qemu_decision.text(),
           "sockhook policy allow --domain " + domain_.uuid + " --qemu " + q.user + ":" + q.group});
    }
    return out;
  }

  void plan_socket(const SocketRequest& req) {
    const Plugin* plugin = in_.plugins->find(req.plugin);
    if (!plugin) return fail(req, in_.plugins->why_missing(req.plugin));
    auto found = in_.owners.find(req.owner);
    if (found == in_.owners.end() || !found->second)
      return fail(req, "owner '" + req.owner + "' is not a user on this host");
    const User& owner = *found->second;
    if (auto refusal = owner_refusal(owner, req.owner, in_.uids)) return fail(req, *refusal);

    SocketPlan sp;
    sp.blocked_by = blockers(req, owner, *plugin);
    sp.request = req;
    sp.plugin_file = plugin->file;
    sp.owner = owner;
    auto runtime_dir = in_.paths.runtime_dir(owner.uid);
    auto facts_it = in_.sources.find(req.name);
    SourceFacts facts = facts_it == in_.sources.end() ? SourceFacts{} : facts_it->second;
    // Which of the plugin's places the owner's server is at (wayland-0 or wayland-1).
    auto path = plugin->socket_path;
    if (auto candidates = plugin->candidates(); candidates.size() > 1) {
      auto choice = choose_candidate(candidates, facts.candidates, owner.name);
      path = choice.path;
      sp.source_note = choice.note;
    }
    bool absolute = path.front() == '/';
    sp.source = socket_place(*plugin, owner, req.method, in_.paths, plan_.lend_dir, path).source;
    // S9: a lend the server does not restrict says what the VM reaches; a context lend is
    // restricted by WirePlumber's rules and says that instead (its method note).
    if (req.method != Method::kContext) sp.reach = plugin->reach;

    sp.method = req.method;
    if (req.method == Method::kContext) {
      if (plugin->context != "pipewire")
        return fail(req,
                    "method context needs a plugin whose server offers security contexts "
                    "(pipewire, jack); '" +
                        plugin->name + "' has none");
      if (auto why = context_unavailable()) return fail(req, *why);
    } else if (req.capture) {
      sp.warnings.push_back({"",
                             "capture='yes' has no effect with method " +
                                 std::string(to_string(req.method)) +
                                 ", which lends the whole server, capture included",
                             ""});
    }
    if (req.method == Method::kAuto && !in_.vm_separation_gap.empty()) {
      // S10: here only the proxy's cgroup check keeps other VMs from this VM's lend.
      sp.method = Method::kProxy;
      sp.method_note = "auto: proxy, which serves only this VM's QEMU: " + in_.vm_separation_gap +
                       ", so a bind lend would reach every VM's QEMU; " +
                       (!facts.exists   ? "could not look at the socket now"
                        : *facts.exists ? "the socket exists now"
                                        : "the socket does not exist yet (the proxy connects "
                                          "when it does)");
    } else if (req.method == Method::kAuto) {
      if (!facts.exists) {
        sp.method = Method::kBind;
        sp.method_note =
            "auto: bind if the socket exists at prepare, otherwise proxy "
            "(could not look now; planned as bind)";
      } else if (*facts.exists && facts.socket_gains && !facts.socket_gains->empty()) {
        // S4: bind would widen the socket's ACL mask for others too; the proxy widens nothing.
        sp.method = Method::kProxy;
        sp.method_note = "auto: the socket exists, but " +
                         acl_gains_refusal(in_.qemu.uid, 6, *facts.socket_gains) + "; so proxy";
      } else {
        sp.method = *facts.exists ? Method::kBind : Method::kProxy;
        sp.method_note = *facts.exists ? "auto: the socket exists, so bind"
                                       : "auto: the socket does not exist yet, so proxy";
      }
    } else if (sp.method != Method::kProxy && !in_.vm_separation_gap.empty()) {
      sp.warnings.push_back({"",
                             "every VM's QEMU can reach this lend, not only this VM's: " +
                                 in_.vm_separation_gap + " (method proxy serves only this VM)",
                             ""});
    }
    // bind and acl grant u:QEMU:rw on the socket, acl and group u:QEMU:x on the directories:
    // refused now when that would widen what others get (the grant itself refuses again).
    std::optional<std::string> widens;
    if ((sp.method == Method::kBind || sp.method == Method::kAcl) && facts.socket_gains &&
        !facts.socket_gains->empty())
      widens = "cannot add ACL entry u:" + std::to_string(in_.qemu.uid) + ":rw on " + sp.source +
               ": " + acl_gains_refusal(in_.qemu.uid, 6, *facts.socket_gains);
    else if ((sp.method == Method::kAcl || sp.method == Method::kGroup) && !facts.dir_gains.empty())
      widens = "cannot add ACL entry u:" + std::to_string(in_.qemu.uid) + ":x on " +
               facts.dir_gains.front().first + ": " +
               acl_gains_refusal(in_.qemu.uid, 1, facts.dir_gains.front().second);
    // A socket the policy blocks is refused by the policy alone: what its source would refuse
    // is for the review, never in the refusal, which must not show anyone's ACL (issue 22).
    if (widens && sp.blocked_by.empty()) return fail(req, *widens);
    if (widens) sp.warnings.push_back({"", "once allowed: " + *widens, ""});
    sp.target = socket_place(*plugin, owner, sp.method, in_.paths, plan_.lend_dir, path).target;
    // Two sockets of one domain must not land on one file (e.g. pipewire and jack).
    for (const auto* list : {&plan_.sockets, &plan_.blocked})
      for (const auto& other : *list)
        if (other.target == sp.target)
          return fail(req, "its target " + sp.target + " is already used by socket '" +
                               other.request.name + "'");
    int wait = req.wait_seconds.value_or(kDefaultWaitSeconds);
    auto base = absolute ? std::string("/") : runtime_dir;
    auto relative = absolute ? sp.source.substr(1) : path;
    const auto& qemu = in_.qemu;

    switch (sp.method) {
      case Method::kBind:
        sp.steps.push_back(VerifySource{base, relative, owner.uid, wait});
        sp.steps.push_back(CreateTarget{sp.target});
        sp.steps.push_back(BindMount{sp.source, sp.target});
        sp.steps.push_back(GrantAcl{sp.source, qemu.uid, "rw", true, false});
        break;
      case Method::kProxy:
        sp.steps.push_back(StartProxy{sp.target, sp.source, owner.uid, owner.gid, qemu.uid,
                                      qemu.gid,
                                      DomainCgroup{domain_.id, domain_.partition}.to_string()});
        break;
      case Method::kContext:
        sp.steps.push_back(StartContext{sp.target, sp.source, owner.uid, owner.gid, qemu.uid,
                                        qemu.gid, domain_.name, domain_.uuid, req.capture});
        sp.method_note =
            std::string("context: through WirePlumber's rules from sockhook, the VM ") +
            (req.capture ? "sees the sinks, the sources and its own streams"
                         : "sees the sinks and its own streams: no source, no "
                           "monitor, no other application's stream") +
            "; where the rules are missing it gets nothing (sockhook doctor)";
        break;
      case Method::kAcl:
      case Method::kGroup:
        if (absolute)
          return fail(req, "methods acl and group need a socket in the runtime directory");
        // QEMU's profile has no rule for /run/user: where the kernel mediates connect() by
        // path the lend would only make the VM fail later, and with less clarity.
        if (in_.apparmor_refuses_original_path)
          return fail(req,
                      original_path_apparmor_refusal(std::string(to_string(sp.method)), sp.source),
                      "use method bind or proxy (auto picks one of them)");
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
          for (const auto& dir : facts.unlisted_dirs)
            sp.warnings.push_back({"",
                                   dir + " holds more entries than are listed here; they become "
                                         "reachable too",
                                   ""});
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
        sp.steps.push_back(CopyFile{"", "", plan_.lend_dir + "/" + file.target, owner.uid, qemu.uid,
                                    kMaxCompanionBytes, false, file.content});
        continue;
      }
      // Where the reader starts, and what lies beneath: the executor opens the base and
      // resolves the rest beneath it without crossing a mount.
      auto [from, beneath] =
          file.path.starts_with("~/")  ? std::pair{owner.home, file.path.substr(2)}
          : file.path.starts_with("/") ? std::pair{std::string("/"), file.path.substr(1)}
                                       : std::pair{runtime_dir, file.path};
      sp.steps.push_back(CopyFile{from, beneath, plan_.lend_dir + "/" + file.target, owner.uid,
                                  qemu.uid, kMaxCompanionBytes, file.optional});
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
    if (!sp.blocked_by.empty()) {
      // Shown for review, never lent: the start fails (or the optional socket is skipped).
      for (const auto& b : sp.blocked_by) fail(req, b.message, b.hint);
      plan_.blocked.push_back(std::move(sp));
      return;
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
                                         const UidRange& uids) {
  // S2: only regular users' sockets; root and system users are always refused.
  if (owner.uid == 0)
    return "owner '" + written + "' is root; sockhook lends only regular users' sockets";
  if (!uids.contains(owner.uid))
    return "owner '" + written + "' (uid " + std::to_string(owner.uid) +
           ") is a system user; regular users have uids " + std::to_string(uids.min) + " to " +
           std::to_string(uids.max) + " (UID_MIN, UID_MAX of login.defs)";
  return std::nullopt;
}

SocketPlace socket_place(const Plugin& plugin, const User& owner, Method method, const Paths& paths,
                         const std::string& lend_dir, const std::string& path) {
  SocketPlace place;
  const auto& from = path.empty() ? plugin.socket_path : path;
  bool absolute = from.front() == '/';
  place.source = absolute ? from : paths.runtime_dir(owner.uid) + "/" + from;
  // bind and proxy lend a name in the lend directory; acl and group open the socket itself.
  bool lent_copy =
      method == Method::kBind || method == Method::kProxy || method == Method::kContext;
  place.target = lent_copy ? lend_dir + "/" + plugin.socket_target : place.source;
  return place;
}

CandidateChoice choose_candidate(const std::vector<std::string>& paths,
                                 const std::vector<CandidateFacts>& facts,
                                 const std::string& owner) {
  auto join = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  auto all = join(paths);
  if (facts.empty())
    return {paths.front(), "could not look for " + all + " (run as root or as " + owner +
                               "); planned as " + paths.front() + ", the first listed"};
  std::vector<const CandidateFacts*> owned, live;
  std::vector<std::string> left_over;
  for (const auto& f : facts) {
    if (!f.owned_socket) continue;
    owned.push_back(&f);
    if (f.listening == false) {
      left_over.push_back(f.path);
    } else {
      live.push_back(&f);
    }
  }
  if (owned.empty())
    return {paths.front(), "none of " + all + " is " + owner + "'s socket now; planned as " +
                               paths.front() + ", the first listed"};
  const auto& pool = live.empty() ? owned : live;
  // The oldest; `facts` is in plugin order, so the first of equals wins.
  const auto* pick = pool.front();
  for (const auto* f : pool)
    if (f->mtime_ns < pick->mtime_ns) pick = f;
  std::vector<std::string> names;
  for (const auto* f : pool) names.push_back(f->path);
  std::string note;
  if (owned.size() == 1) {
    note = pick->path + " is the only one of " + all + " that is " + owner + "'s socket";
  } else if (pool.size() == 1) {
    note = pick->path + " is the only one of " + all + " where " + owner + "'s server listens";
  } else {
    note = pick->path + " is the oldest of " + owner + "'s " +
           (live.empty() ? "sockets " : "listening sockets ") + join(names) +
           " (one made later is usually a compositor nested in it)";
  }
  if (!left_over.empty() && !live.empty())
    note += "; nothing listens on " + join(left_over) + " (left over)";
  if (live.empty())
    note +=
        owned.size() > 1 ? "; nothing listens on any of them now" : "; nothing listens on it now";
  return {pick->path, note};
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
  out << "  " << plan.qemu_decision.text() << "\n";
  int n = 0;
  for (const auto& step : plan.domain_steps) out << "  " << ++n << ". " << describe(step) << "\n";
  for (const auto& s : plan.sockets) format_socket(out, plan, s, n, "");
  if (!plan.blocked.empty()) {
    out << "\nBLOCKED by policy: the hook refuses these; a grant would bring:\n";
    int b = 0;
    for (const auto& step : plan.blocked_domain_steps)
      out << "  [blocked] " << ++b << ". " << describe(step) << "\n";
    for (const auto& s : plan.blocked) format_socket(out, plan, s, b, "[blocked] ");
  }
  if (plan.sockets.empty() && !plan.blocked.empty())
    out << "\nnothing to lend until the policy allows it\n";
  if (plan.sockets.empty() && plan.blocked.empty() && plan.errors.empty())
    out << "\nnothing to lend\n";
  if (!plan.warnings.empty() || !plan.errors.empty()) out << "\n";
  for (const auto& w : plan.warnings) out << "warning: " << w.text() << "\n";
  for (const auto& e : plan.errors) out << "error: " << e.text() << "\n";
  return out.str();
}

bool revocable(Method method) { return method == Method::kProxy || method == Method::kContext; }

std::string reach_line(const std::string& socket, const std::string& reach) {
  return socket + ": unrestricted: " + reach;
}

namespace {

/// One line for people: what release can take back after `method` (see revocable).
std::string revocability(Method method) {
  if (method == Method::kContext)
    return "revocable: yes (release stops the context's holder; PipeWire then drops the VM's "
           "clients and refuses new ones)";
  if (revocable(method))
    return "revocable: yes (release stops the proxy; a descriptor QEMU kept reaches nothing)";
  return "revocable: no (a descriptor QEMU keeps of the socket, even O_PATH, still connects "
         "after release; only methods proxy and context can be revoked)";
}

void format_socket(std::ostream& out, const Plan& plan, const SocketPlan& s, int& n,
                   const std::string& mark) {
  {
    out << "\nsocket " << s.request.name << ": plugin " << s.request.plugin << ", owner "
        << s.owner.name << " (uid " << s.owner.uid << "), method " << to_string(s.method)
        << (s.request.required ? ", required" : ", optional") << "\n";
    for (const auto& b : s.blocked_by)
      out << "  blocked: " << b.message << "\n    grant with: " << b.hint << "\n";
    if (!s.method_note.empty()) out << "  (" << s.method_note << ")\n";
    out << "  " << revocability(s.method) << "\n";
    if (!s.reach.empty()) out << "  " << reach_line(s.request.name, s.reach) << "\n";
    if (!s.source_note.empty()) out << "  found " << s.source_note << "\n";
    out << "  source " << s.source << "\n  target " << s.target << "\n";
    for (const auto& step : s.steps) out << "  " << mark << ++n << ". " << describe(step) << "\n";
    if (!s.env.empty())
      out << "  QEMU environment" << (mark.empty() ? "" : " (once granted)") << ":\n";
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
}

}  // namespace

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
  j["qemu"]["verdict"] = to_string(plan.qemu_decision.verdict);
  j["qemu"]["why"] = plan.qemu_decision.why;
  // Every step and socket says whether it is blocked: a blocked one is what a grant would
  // bring, and the hook refuses it until then.
  auto step_json = [](const Step& step, bool blocked) {
    auto sj = to_json(step);
    sj["blocked"] = blocked;
    return sj;
  };
  for (const auto& step : plan.domain_steps) j["steps"].push_back(step_json(step, false));
  for (const auto& step : plan.blocked_domain_steps) j["steps"].push_back(step_json(step, true));
  auto socket_json = [&](const SocketPlan& s) {
    bool blocked = !s.blocked_by.empty();
    json sj{{"name", s.request.name},
            {"plugin", s.request.plugin},
            {"owner", s.owner.name},
            {"owner_uid", s.owner.uid},
            {"method", to_string(s.method)},
            {"revocable", revocable(s.method)},
            {"required", s.request.required},
            {"source", s.source},
            {"source_note", s.source_note},
            {"reach", s.reach},
            {"target", s.target},
            {"blocked", blocked},
            {"blocked_by", json::array()},
            {"steps", json::array()},
            {"env", json::array()},
            {"exposes", s.exposes},
            {"warnings", texts(s.warnings)}};
    for (const auto& b : s.blocked_by)
      sj["blocked_by"].push_back({{"reason", b.message}, {"grant", b.hint}});
    for (const auto& step : s.steps) sj["steps"].push_back(step_json(step, blocked));
    for (const auto& e : s.env)
      sj["env"].push_back({{"name", e.name},
                           {"value", e.value},
                           {"provided", e.provided},
                           {"provided_by", e.provided_by},
                           {"blocked", blocked}});
    return sj;
  };
  for (const auto& s : plan.sockets) j["sockets"].push_back(socket_json(s));
  for (const auto& s : plan.blocked) j["sockets"].push_back(socket_json(s));
  return j;
}

}  // namespace sockhook
