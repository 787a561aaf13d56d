#include "plan/plan.hpp"

#include "base/build.hpp"
#include "base/error.hpp"
#include "host/confinement.hpp"
#include "host/domain_cgroup.hpp"
#include "plan/choose_method.hpp"
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
      needs |= traits(s.method).lend_dir_target;
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

  /// One socket while it is planned: what the stages below hand each other.
  struct Draft {
    explicit Draft(const SocketRequest& r) : req(r) {}
    const SocketRequest& req;
    const Plugin* plugin = nullptr;
    const User* owner = nullptr;
    SourceFacts facts;
    std::string runtime_dir;
    std::string path;  ///< the plugin's place the owner's server is at (one of its candidates)
    bool absolute = false;
    bool behind_proxy = false;  ///< a context socket behind the proxy (MethodChoice)
    SocketPlan sp;
  };

  /// Records `why` for the socket (an error, or a warning if it is optional); false, so that a
  /// stage can `return refuse(...)`.
  bool refuse(const SocketRequest& req, const std::string& why, const std::string& hint = "") {
    fail(req, why, hint);
    return false;
  }

  /// The socket's plan, stage by stage; a stage that refuses the socket ends it.
  void plan_socket(const SocketRequest& req) {
    Draft d(req);
    if (!find_plugin_and_owner(d) || !place_source(d) || !pick_method(d) || !refuse_widening(d) ||
        !place_target(d) || !add_method_steps(d))
      return;
    add_companion_files(d);
    add_environment(d);
    if (!d.sp.blocked_by.empty()) {
      // Shown for review, never lent: the start fails (or the optional socket is skipped).
      for (const auto& b : d.sp.blocked_by) fail(req, b.message, b.hint);
      plan_.blocked.push_back(std::move(d.sp));
      return;
    }
    plan_.sockets.push_back(std::move(d.sp));
  }

  /// The plugin and the owner exist, and the owner is a regular user (S2); what the policy
  /// has not allowed yet blocks the socket (shown, never lent).
  bool find_plugin_and_owner(Draft& d) {
    const auto& req = d.req;
    d.plugin = in_.plugins->find(req.plugin);
    if (!d.plugin) return refuse(req, in_.plugins->why_missing(req.plugin));
    auto found = in_.owners.find(req.owner);
    if (found == in_.owners.end() || !found->second)
      return refuse(req, "owner '" + req.owner + "' is not a user on this host");
    d.owner = &*found->second;
    if (auto refusal = owner_refusal(*d.owner, req.owner, in_.uids)) return refuse(req, *refusal);
    d.sp.blocked_by = blockers(req, *d.owner, *d.plugin);
    d.sp.request = req;
    d.sp.plugin_file = d.plugin->file;
    d.sp.owner = *d.owner;
    d.runtime_dir = in_.paths.runtime_dir(d.owner->uid);
    auto facts_it = in_.sources.find(req.name);
    d.facts = facts_it == in_.sources.end() ? SourceFacts{} : facts_it->second;
    return true;
  }

  /// Where the owner's server is: which of the plugin's places (wayland-0 or wayland-1), and
  /// what the VM reaches there.
  bool place_source(Draft& d) {
    const auto& req = d.req;
    auto& sp = d.sp;
    d.path = d.plugin->socket_path;
    if (auto candidates = d.plugin->candidates(); candidates.size() > 1) {
      auto choice = choose_candidate(candidates, d.facts.candidates, d.owner->name);
      d.path = choice.path;
      sp.source_note = choice.note;
    }
    d.absolute = d.path.front() == '/';
    sp.source =
        socket_place(*d.plugin, *d.owner, req.method, in_.paths, plan_.lend_dir, d.path).source;
    // S9: a lend the server does not restrict says what the VM reaches; a context lend is
    // restricted by WirePlumber's rules and says that instead (its method note).
    if (req.method != Method::kContext) sp.reach = d.plugin->reach;
    return true;
  }

  /// The method: the one asked for, or what `auto` picks from the facts, and why
  /// (choose_method.cpp).
  bool pick_method(Draft& d) {
    auto choice = choose_method(in_, d.req, *d.plugin, d.facts, d.sp.source);
    if (choice.refusal) return refuse(d.req, choice.refusal->message, choice.refusal->hint);
    d.sp.method = choice.method;
    d.sp.method_note = choice.note;
    for (auto& w : choice.warnings) d.sp.warnings.push_back(std::move(w));
    d.behind_proxy = choice.behind_proxy;
    // A context lend is restricted inside the server: its method note says how, never the
    // plugin's <reach> (S9).
    if (d.sp.method == Method::kContext) d.sp.reach.clear();
    return true;
  }

  /// bind and acl grant u:QEMU:rw on the socket, acl and group u:QEMU:x on the directories:
  /// refused now when that would widen what others get (the grant itself refuses again).
  bool refuse_widening(Draft& d) {
    const auto& req = d.req;
    const auto& facts = d.facts;
    auto& sp = d.sp;
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
    if (widens && sp.blocked_by.empty()) return refuse(req, *widens);
    if (widens) sp.warnings.push_back({"", "once allowed: " + *widens, ""});
    return true;
  }

  /// Where QEMU finds the socket; two sockets of one domain must not land on one file (e.g.
  /// pipewire and jack).
  bool place_target(Draft& d) {
    auto& sp = d.sp;
    sp.target =
        socket_place(*d.plugin, *d.owner, sp.method, in_.paths, plan_.lend_dir, d.path).target;
    for (const auto* list : {&plan_.sockets, &plan_.blocked})
      for (const auto& other : *list)
        if (other.target == sp.target)
          return refuse(d.req, "its target " + sp.target + " is already used by socket '" +
                                   other.request.name + "'");
    return true;
  }

  /// The method's steps, and what it lets QEMU's user reach besides the socket.
  bool add_method_steps(Draft& d) {
    const auto& req = d.req;
    const auto& owner = *d.owner;
    const auto& facts = d.facts;
    const auto& runtime_dir = d.runtime_dir;
    const bool absolute = d.absolute;
    auto& sp = d.sp;
    int wait = req.wait_seconds.value_or(kDefaultWaitSeconds);
    auto base = absolute ? std::string("/") : runtime_dir;
    auto relative = absolute ? sp.source.substr(1) : d.path;
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
        add_context_steps(d);
        break;
      case Method::kAcl:
      case Method::kGroup:
        if (absolute)
          return refuse(req, "methods acl and group need a socket in the runtime directory");
        // QEMU's profile has no rule for /run/user: where the kernel mediates connect() by
        // path the lend would only make the VM fail later, and with less clarity.
        if (in_.apparmor_refuses_original_path)
          return refuse(
              req, original_path_apparmor_refusal(std::string(to_string(sp.method)), sp.source),
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

    return true;
  }

  /// Method context: the holder's step, behind a proxy's where no LSM keeps VMs apart (S10);
  /// and what the server restricts, in the method note (S9).
  void add_context_steps(Draft& d) {
    const auto& owner = *d.owner;
    const auto& qemu = in_.qemu;
    auto& sp = d.sp;
    // Behind the proxy the context socket has its own name in the lend directory, the
    // owner's: QEMU's user may traverse the directory but not connect to it.
    StartContext context{d.behind_proxy ? sp.target + ".context" : sp.target,
                         sp.source,
                         owner.uid,
                         owner.gid,
                         qemu.uid,
                         qemu.gid,
                         domain_.name,
                         domain_.uuid,
                         d.req.capture,
                         d.plugin->context};
    if (d.behind_proxy) context.behind_proxy = true;
    sp.steps.push_back(context);
    if (d.behind_proxy) {
      StartProxy proxy{sp.target,
                       context.listen_path,
                       owner.uid,
                       owner.gid,
                       qemu.uid,
                       qemu.gid,
                       DomainCgroup{domain_.id, domain_.partition}.to_string()};
      proxy.source_fd = true;
      sp.steps.push_back(proxy);
    }
    auto why = sp.method_note.empty() ? std::string() : sp.method_note + "; ";
    if (d.plugin->context == "wayland") {
      // What sway 1.10 hides (LIBVIRT-NOTES, "Security contexts"); each compositor decides
      // its own list.
      sp.method_note = why +
                       "context: the compositor hides its privileged globals from the VM "
                       "(on sway: screencopy, virtual keyboard and pointer, layer shell, "
                       "clipboard control, input method); the clipboard itself stays";
      return;
    }
    sp.method_note = why + "context: through WirePlumber's rules from sockhook, the VM " +
                     (d.req.capture ? "sees the sinks, the sources and its own streams"
                                    : "sees the sinks and its own streams: no source, no "
                                      "monitor, no other application's stream") +
                     "; where the rules are missing it gets nothing (sockhook doctor)";
  }

  /// The plugin's companion files (the PulseAudio cookie), always into the domain's own lend
  /// directory, for every method.
  void add_companion_files(Draft& d) {
    const auto& owner = *d.owner;
    const auto& qemu = in_.qemu;
    const auto& runtime_dir = d.runtime_dir;
    auto& sp = d.sp;
    for (const auto& file : d.plugin->files) {
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
  }

  /// QEMU's environment for the socket, and a warning for each variable the XML lacks.
  void add_environment(Draft& d) {
    const auto& owner = *d.owner;
    const auto* plugin = d.plugin;
    auto& sp = d.sp;
    auto vars = socket_variables(in_.paths, owner, sp.target, plan_.lend_dir);
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
  place.target =
      traits(method).lend_dir_target ? lend_dir + "/" + plugin.socket_target : place.source;
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

bool revocable(Method method) { return traits(method).revocable; }

std::string reach_line(const std::string& socket, const std::string& reach) {
  return socket + ": unrestricted: " + reach;
}

}  // namespace sockhook
