#include "commands/cli.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "base/log.hpp"
#include "commands/annotate.hpp"
#include "commands/doctor.hpp"
#include "commands/grant.hpp"
#include "commands/hook_entry.hpp"
#include "commands/owner_status.hpp"
#include "commands/recorded_lends.hpp"
#include "host/virt.hpp"
#include "model/policy.hpp"
#include "plan/gather.hpp"
#include "plan/pipeline.hpp"
#include "plan/plan.hpp"
#include "plan/plan_text.hpp"
#include "sys/file.hpp"

namespace sockhook {

// `sockhook status --json`: one object per lend, its fields by these names.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(LendStatus, domain, uuid, socket, method, owner, source, target,
                                   health, why, proxy_pid, holder_pid)

namespace {

/// Runs a command's body, the edge of every command: an Error becomes one `sockhook: error:`
/// line (after `context: ` when given) and status 1.
template <typename Body>
int reporting_errors(const std::string& context, Body body) {
  auto out = attempt(body);
  if (out) return *out.value;
  print_error(context.empty() ? out.what() : context + ": " + out.what());
  return 1;
}

template <typename Body>
int reporting_errors(Body body) {
  return reporting_errors("", body);
}

/// Options shared by the commands that plan.
struct PlanCommand {
  std::string file;
  std::string domain;
  std::string operation = "prepare";
  std::string connect;
  std::vector<std::string> plugin_dirs;
  std::string policy = policy_path();
  std::string qemu_conf = "/etc/libvirt/qemu.conf";
  bool json = false;

  void add_to(CLI::App& app, int* status) {
    auto* cmd =
        app.add_subcommand("plan", "Show what the hook would do (a dry run; needs no root)");
    cmd->add_option("file", file, "Domain XML file, or - for stdin");
    cmd->add_option("--domain", domain, "Read the domain's XML from libvirt");
    cmd->add_option("--operation", operation, "prepare or release")
        ->check(CLI::IsMember({"prepare", "release"}));
    cmd->add_option("--connect,-c", connect, "libvirt URI (with --domain)");
    cmd->add_option("--plugin-dir", plugin_dirs,
                    "Look for plugins here first (files must be yours or root's)");
    cmd->add_option("--policy", policy, "Policy file")->capture_default_str();
    cmd->add_option("--qemu-conf", qemu_conf, "libvirt's qemu.conf")->capture_default_str();
    cmd->add_flag("--json", json, "Machine-readable output");
    cmd->callback([this, status] { *status = run(); });
  }

  int run() {
    Gathered g;
    std::string xml;
    auto parsed = attempt([&] {
      if (!domain.empty()) {
        Virt virt(connect);
        xml = virt.xml_of(domain, !virt.is_active(domain));
      } else {
        xml = read_domain_xml(file.empty() ? "-" : file);
      }
      g.domain = parse_domain_xml(xml);
    });
    if (!parsed) {
      print_error((domain.empty() ? file : domain) + ": " + parsed.what());
      return 1;
    }
    GatherOptions options;
    options.policy_path = policy;
    options.qemu_conf_path = qemu_conf;
    // A dry run by an ordinary user may trust that user's own plugin files: it grants nothing.
    options.trusted_uids = {0, ::geteuid()};
    // A review shows what a grant would expose, so it looks at the sources the policy has
    // not allowed yet, with the rights of whoever runs it; the hook never does (issue 22).
    options.probe_unallowed = true;
    std::vector<PluginDir> dirs;
    for (const auto& d : plugin_dirs) dirs.push_back({d, false});
    for (const auto& d : options.plugin_dirs) dirs.push_back(d);
    options.plugin_dirs = dirs;
    auto planned = attempt([&] { return gather_and_plan(g, options); });
    if (!planned) {
      print_error(g.domain.name + ": " + planned.what());
      return 1;
    }
    const Plan& plan = *planned.value;
    if (json) {
      auto j = plan_to_json(plan);
      j["operation"] = operation;
      if (operation == "release") j["undo"] = undo_lines(plan);
      std::cout << j.dump(2) << "\n";
    } else if (operation == "release") {
      std::cout << "release of " << plan.domain << " would, newest first:\n";
      int n = 0;
      for (const auto& line : undo_lines(plan)) std::cout << "  " << ++n << ". " << line << "\n";
      std::cout << "(release acts only on what the journal in " << options.paths.state_dir
                << " recorded, and only where the inode still matches)\n";
    } else {
      std::cout << format_plan(plan);
    }
    for (const auto& e : plan.errors) print_error(plan.domain + ": " + e.text());
    return plan.failed() ? 1 : 0;
  }

  static std::vector<std::string> undo_lines(const Plan& plan) {
    std::vector<std::string> lines;
    for (auto s = plan.sockets.rbegin(); s != plan.sockets.rend(); ++s)
      for (auto step = s->steps.rbegin(); step != s->steps.rend(); ++step)
        if (auto line = describe_undo(*step); !line.empty())
          lines.push_back(s->request.name + ": " + line);
    for (const auto& step : plan.domain_steps) lines.push_back(describe_undo(step));
    return lines;
  }
};

/// sockhook plugins [NAME] [--plugin-dir DIR...]: extra directories come first and, as for
/// `plan`, may hold the caller's own files (listing grants nothing).
int list_plugins(const std::string& name, const std::vector<std::string>& extra_dirs) {
  std::vector<PluginDir> dirs;
  for (const auto& d : extra_dirs) dirs.push_back({d, false});
  for (const auto& d : default_plugin_dirs()) dirs.push_back(d);
  std::vector<uid_t> trusted{0};
  if (!extra_dirs.empty()) trusted.push_back(::geteuid());
  auto set = load_plugins(dirs, trusted);
  for (const auto& p : set.problems) std::printf("warning: %s\n", p.c_str());
  if (!name.empty()) {
    const Plugin* p = set.find(name);
    if (!p) {
      print_error(set.why_missing(name));
      return 1;
    }
    std::string sources;
    for (const auto& path : p->socket_paths)
      sources +=
          (sources.empty() ? "" : " or ") + (path.front() == '/' ? path : "{runtime_dir}/" + path);
    std::printf("%s: %s\n  file    %s\n  socket  %s -> {lend_dir}/%s\n", p->name.c_str(),
                p->summary.c_str(), p->file.c_str(), sources.c_str(), p->socket_target.c_str());
    if (!p->reach.empty()) std::printf("  reach   %s\n", p->reach.c_str());
    for (const auto& f : p->files)
      std::printf("  file    %s -> {lend_dir}/%s%s\n", f.path.c_str(), f.target.c_str(),
                  f.optional ? " (optional)" : "");
    for (const auto& e : p->env) std::printf("  env     %s=%s\n", e.name.c_str(), e.value.c_str());
    for (const auto& a : p->audio)
      std::printf("  libvirt <audio type='%s' %s='%s'> instead of %s\n", a.audio_type.c_str(),
                  a.attribute.c_str(), a.value.c_str(), a.covers.c_str());
    return 0;
  }
  for (const auto& [n, p] : set.plugins)
    std::printf("%-12s %s\n             %s\n", n.c_str(), p.summary.c_str(), p.file.c_str());
  for (const auto& [n, why] : set.refused)
    std::printf("%-12s REFUSED: %s\n", n.c_str(), why.c_str());
  return set.refused.empty() ? 0 : 1;
}

/// sockhook policy allow|revoke|list
struct PolicyCommand {
  std::string domain, owner, plugin, qemu, connect;
  std::string file = policy_path();

  void add_to(CLI::App& app, int* status) {
    auto* cmd = app.add_subcommand("policy", "Manage which owner may lend what to which domain");
    cmd->require_subcommand(1);
    cmd->add_option("--policy-file", file, "Policy file")->capture_default_str();
    for (const char* verb : {"allow", "revoke"}) {
      bool is_allow = std::string_view(verb) == "allow";
      auto* sub = cmd->add_subcommand(
          verb, is_allow ? "Allow an owner to lend to a domain, or QEMU to receive as USER:GROUP"
                         : "Take an allowance back");
      sub->add_option("--domain", domain, "Domain name or UUID")->required();
      auto* owner_opt = sub->add_option("--owner", owner, "User name or uid");
      sub->add_option("--plugin", plugin,
                      is_allow ? "Plugin (default: all)" : "Plugin (default: all of them)")
          ->needs(owner_opt);
      sub->add_option("--qemu", qemu,
                      "QEMU identity USER:GROUP (names or numbers) a DAC label may name, besides "
                      "the configured one");
      sub->add_option("--connect,-c", connect, "libvirt URI, to resolve a domain name");
      sub->callback([this, is_allow, status] { *status = change(is_allow); });
    }
    cmd->add_subcommand("list", "List the allowances")->callback([this, status] {
      *status = list();
    });
  }

  int change(bool allow) {
    if (owner.empty() == qemu.empty()) {
      print_error("policy " + std::string(allow ? "allow" : "revoke") +
                  " needs --owner or --qemu (one of them)");
      return 2;
    }
    return reporting_errors(domain, [&] {
      std::string uuid = domain;
      if (!is_valid_uuid(domain)) uuid = Virt(connect).uuid_of(domain);
      if (!qemu.empty()) return change_qemu(uuid, allow);
      auto user = lookup_user(owner);
      if (!user) throw Error("owner '" + owner + "' is not a user on this host");
      if (allow)
        if (auto why = owner_refusal(*user, owner, regular_uid_range())) throw Error(*why);
      auto policy = load_policy(file);
      auto key = policy_owner_key(user->name, user->uid);
      bool changed = allow ? policy.allow(uuid, key, plugin.empty() ? "*" : plugin)
                           : policy.revoke(uuid, key, plugin);
      if (changed) save_policy(policy, file);
      std::printf("%s: %s %s %s\n", uuid.c_str(), user->name.c_str(),
                  changed ? (allow ? "may now lend" : "may no longer lend") : "already had",
                  plugin.empty() ? "every plugin" : plugin.c_str());
      return 0;
    });
  }

  /// policy allow|revoke --qemu USER:GROUP: who, besides QEMU's configured identity, a DAC
  /// label in this domain's XML may name to receive its lends.
  int change_qemu(const std::string& uuid, bool allow) {
    if (!is_valid_qemu_identity(qemu))
      throw Error("--qemu '" + qemu + "' is not USER:GROUP (names or numbers, +N for a number)");
    if (allow) {
      // Refuse a typo now rather than at the VM's start.
      std::vector<std::string> problems;
      auto resolved = resolve_allowed_identities({qemu}, problems);
      if (resolved.empty()) throw Error("QEMU identity '" + qemu + "' is not a user:group here");
    }
    auto policy = load_policy(file);
    bool changed = allow ? policy.allow_qemu(uuid, qemu) : policy.revoke_qemu(uuid, qemu);
    if (changed) save_policy(policy, file);
    std::printf("%s: QEMU as %s %s\n", uuid.c_str(), qemu.c_str(),
                changed ? (allow ? "may now receive lends" : "may no longer receive lends")
                        : (allow ? "already could receive lends" : "was not allowed"));
    return 0;
  }

  int list() {
    return reporting_errors([&] {
      auto policy = load_policy(file);
      if (::geteuid() != 0) return list_own(policy);
      if (policy.rules().empty() && policy.qemu_rules().empty())
        std::printf("no allowances (default deny)\n");
      for (const auto& [uuid, identity] : policy.qemu_rules())
        std::printf("%s  QEMU may run as %s\n", uuid.c_str(), identity.c_str());
      for (const auto& r : policy.rules()) {
        std::string plugins;
        for (const auto& p : r.plugins) plugins += (plugins.empty() ? "" : " ") + p;
        std::printf("%s  %-12s %s\n", r.uuid.c_str(), r.owner.c_str(), plugins.c_str());
      }
      return 0;
    });
  }

  /// `policy list` run by an owner: their own allowances (by name or uid), as `grant` made
  /// them. The file is readable by all; this is what concerns the caller, not a secret kept.
  static int list_own(const Policy& policy) {
    const auto uid = ::getuid();
    auto me = lookup_user(std::to_string(uid), true);
    const std::string name = me ? me->name : std::to_string(uid);
    int n = 0;
    for (const auto& r : policy.rules()) {
      if (r.owner != name && r.owner != std::to_string(uid)) continue;
      std::string plugins;
      for (const auto& p : r.plugins) plugins += (plugins.empty() ? "" : " ") + p;
      std::printf("%s  %s\n", r.uuid.c_str(), plugins.c_str());
      ++n;
    }
    if (n == 0)
      std::printf("no allowances of %s's (sockhook grant DOMAIN --plugin P)\n", name.c_str());
    return 0;
  }
};

/// sockhook status [--json] | cleanup [DOMAIN|--stale] | refresh DOMAIN: the journals' view.
struct LendsCommand {
  bool json = false, stale = false, forget = false;
  std::string cleanup_domain, refresh_domain;
  std::string policy_file = policy_path();

  void add_to(CLI::App& app, int* status) {
    auto* st = app.add_subcommand(
        "status", "List every active lend and its health (run by an owner: their own)");
    st->add_flag("--json", json, "Machine-readable output");
    st->callback([this, status] { *status = show(); });
    auto* cl = app.add_subcommand("cleanup",
                                  "Undo the lends of a domain, or of every domain "
                                  "whose QEMU is not running (--stale)");
    cl->add_option("domain", cleanup_domain, "Domain name or UUID");
    cl->add_flag("--stale", stale, "Every domain whose QEMU is not running");
    cl->add_flag("--forget", forget,
                 "Drop what cannot be undone from the journal, after saying what may remain");
    cl->callback([this, status] { *status = cleanup(); });
    auto* rf = app.add_subcommand(
        "refresh", "Bind the stale lends of a domain again, restart its dead proxies");
    rf->add_option("domain", refresh_domain, "Domain name or UUID")->required();
    rf->add_option("--policy-file", policy_file, "Policy file: what it still allows is re-bound")
        ->capture_default_str();
    rf->callback([this, status] { *status = refresh(); });
  }

  int show() {
    // An owner cannot read root's journals (0700): their own lends come through pkexec, and
    // only theirs (SPEC §16). Root reads every journal itself.
    if (::geteuid() != 0) return ask_owner_status(json);
    return reporting_errors([&] {
      print_lends(lend_status(Paths{}), json, "no active lends");
      return 0;
    });
  }

  /// The lends, as text or JSON; `none` when there are none (text only: JSON says []).
  static void print_lends(const std::vector<LendStatus>& lends, bool as_json,
                          const std::string& none) {
    if (as_json) {
      auto out = nlohmann::json::array();
      for (const auto& l : lends) out.push_back(l);
      std::cout << out.dump(2) << "\n";
      return;
    }
    if (lends.empty()) std::printf("%s\n", none.c_str());
    for (const auto& l : lends) {
      std::printf("%s (%s) %s: %s, owner %s\n  %s -> %s\n  health %s%s%s", l.domain.c_str(),
                  l.uuid.c_str(), l.socket.c_str(), l.method.c_str(), l.owner.c_str(),
                  l.source.c_str(), l.target.c_str(), l.health.c_str(), l.why.empty() ? "" : ": ",
                  l.why.c_str());
      if (l.proxy_pid > 0 && l.proxy_pid != l.holder_pid)
        std::printf(", proxy pid %d", static_cast<int>(l.proxy_pid));
      if (l.holder_pid > 0) std::printf(", holder pid %d", static_cast<int>(l.holder_pid));
      std::printf("\n");
    }
  }

  /// `sockhook polkit-status [--json]`, what pkexec runs for an owner's status: the caller's
  /// lends, the caller from PKEXEC_UID alone.
  void add_owner_status_to(CLI::App& app, int* status) {
    auto* cmd = app.add_subcommand(kStatusCommand, "")->group("");
    cmd->add_flag("--json", json);
    cmd->callback([this, status] {
      *status = reporting_errors("status", [&] {
        auto mine = owner_lends(Paths{});
        print_lends(mine.lends, json, "no active lends of " + mine.caller.name + "'s");
        return 0;
      });
    });
  }

  int cleanup() {
    if (stale == !cleanup_domain.empty()) {
      print_error("cleanup needs DOMAIN or --stale");
      return 2;
    }
    return reporting_errors([&] {
      auto r = cleanup_lends(ExecContext{}, cleanup_domain, stale, forget);
      for (const auto& uuid : r.done) {
        bool dropped = std::any_of(r.forgotten.begin(), r.forgotten.end(),
                                   [&](const std::string& f) { return f.starts_with(uuid + ":"); });
        std::printf(dropped ? "ended %s (journal dropped: see the warnings)\n" : "released %s\n",
                    uuid.c_str());
      }
      for (const auto& uuid : r.nothing)
        std::printf("%s: nothing recorded, nothing undone\n", uuid.c_str());
      for (const auto& line : r.starting) std::printf("%s\n", line.c_str());
      for (const auto& uuid : r.busy)
        std::printf("%s: left alone: a hook of this domain runs now (it is starting or stopping)\n",
                    uuid.c_str());
      // Ended all the same: warnings, one line each, for a person to check by hand.
      for (const auto& f : r.forgotten) std::fprintf(stderr, "sockhook: warning: %s\n", f.c_str());
      for (const auto& p : r.problems) print_error(p);
      if (!r.problems.empty() && !forget)
        std::fprintf(stderr,
                     "sockhook: hint: --forget ends a journal anyway, after saying what may "
                     "remain\n");
      return r.problems.empty() ? 0 : 1;
    });
  }

  int refresh() {
    return reporting_errors([&] {
      auto r = refresh_lends(ExecContext{}, refresh_domain, load_policy(policy_file));
      for (const auto& name : r.done) std::printf("refreshed %s\n", name.c_str());
      if (r.done.empty() && r.problems.empty()) std::printf("nothing stale\n");
      for (const auto& p : r.problems) print_error(refresh_domain + ": " + p);
      return r.problems.empty() ? 0 : 1;
    });
  }
};

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"sockhook: lend desktop sockets (PipeWire, PulseAudio, Wayland) to libvirt VMs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sockhook " SOCKHOOK_VERSION);

  int status = 0;
  PlanCommand plan;
  plan.add_to(app, &status);

  std::string plugin_name;
  std::vector<std::string> plugin_dirs;
  auto* plugins = app.add_subcommand("plugins", "List the installed plugins, or show one");
  plugins->add_option("name", plugin_name, "Plugin name");
  plugins->add_option("--plugin-dir", plugin_dirs,
                      "Look for plugins here first (files must be yours or root's)");
  plugins->callback([&] { status = list_plugins(plugin_name, plugin_dirs); });

  PolicyCommand policy;
  policy.add_to(app, &status);

  LendsCommand lends;
  lends.add_to(app, &status);
  lends.add_owner_status_to(app, &status);

  AnnotateOptions annotate;
  std::string annotate_required = "yes";
  std::string annotate_method;
  int annotate_wait = -1;
  annotate.policy_file = policy_path();
  auto* ann = app.add_subcommand(
      "annotate", "Add a socket to a domain's persistent definition (or --remove it)");
  ann->add_option("domain", annotate.domain, "Domain name or UUID");
  ann->add_option("--plugin", annotate.request.plugin, "Plugin to lend");
  ann->add_option("--owner", annotate.request.owner, "User whose socket is lent");
  ann->add_option("--method", annotate_method, "auto, bind, proxy, acl, group or context");
  ann->add_option("--required", annotate_required, "yes or no")
      ->check(CLI::IsMember({"yes", "no"}));
  ann->add_option("--wait", annotate_wait, "Seconds to wait for a missing socket")
      ->check(CLI::Range(0, 120));
  ann->add_option("--name", annotate.request.name, "Socket name (default: the plugin's)");
  ann->add_flag("--remove", annotate.request.remove, "Take the socket and what it added out");
  ann->add_flag("--capture", annotate.request.capture,
                "Let a context lend record the owner's sources too (capture=\"yes\")");
  ann->add_option("--file", annotate.file, "Work offline on this XML file (- for stdin)");
  ann->add_option("-o,--output", annotate.output, "With --file: write here (default stdout)");
  ann->add_option("--connect,-c", annotate.connect, "libvirt URI");
  ann->add_option("--libvirt-version", annotate.libvirt_version,
                  "Assume this libvirt version (default: the daemon's; offline: the installed "
                  "library's)");
  ann->add_option("--policy-file", annotate.policy_file, "Policy file")->capture_default_str();
  ann->callback([&] {
    if (annotate.domain.empty() && annotate.file.empty()) {
      print_error("annotate needs DOMAIN or --file");
      status = 2;
      return;
    }
    annotate.request.required = annotate_required == "yes";
    if (!annotate_method.empty()) annotate.request.method = annotate_method;
    if (annotate_wait >= 0) annotate.request.wait_seconds = annotate_wait;
    status = run_annotate(annotate);
  });

  // The owner's consent (SPEC §16): grant and revoke as the owner, through polkit.
  ConsentRequest consent;
  auto* grant = app.add_subcommand(
      "grant", "As the owner: lend your own socket to a domain (polkit asks who may)");
  grant->add_option("domain", consent.domain, "Domain name or UUID")->required();
  grant->add_option("--plugin", consent.plugin, "Plugin to lend")->required();
  grant->add_flag("--capture", consent.capture, "Let the VM record your sources too");
  grant->add_option("--method", consent.method, "auto, bind, proxy, acl, group or context");
  grant->callback([&] { status = ask_consent(consent); });
  auto* revoke = app.add_subcommand(
      "revoke", "As the owner: take your own sockets (of --plugin) back from a domain");
  revoke->add_option("domain", consent.domain, "Domain name or UUID")->required();
  revoke->add_option("--plugin", consent.plugin, "Only this plugin's socket");
  revoke->callback([&] {
    consent.revoke = true;
    status = ask_consent(consent);
  });
  // What pkexec runs (internal, not listed): the caller comes from PKEXEC_UID alone.
  std::string consent_verb;
  auto* internal = app.add_subcommand(kConsentCommand, "")->group("");
  internal->add_option("verb", consent_verb)->required()->check(CLI::IsMember({"grant", "revoke"}));
  internal->add_option("domain", consent.domain)->required();
  internal->add_option("--plugin", consent.plugin);
  internal->add_flag("--capture", consent.capture);
  internal->add_option("--method", consent.method);
  internal->callback([&] {
    consent.revoke = consent_verb == "revoke";
    status = run_consent(consent);
    // What the VM will get: the dry run of its next start, as `sockhook plan --domain`.
    if (status == 0 && !consent.revoke) {
      PlanCommand shown;
      shown.domain = consent.domain;
      shown.connect = "qemu:///system";
      shown.run();
    }
  });

  DomainCheckOptions doctor_domain;
  auto* doctor =
      app.add_subcommand("doctor", "Check the host, or what would stop a domain's lends");
  doctor->add_option("domain", doctor_domain.domain, "Domain name or UUID");
  doctor->add_option("--file", doctor_domain.file, "Check this domain XML file instead");
  doctor->add_option("--connect,-c", doctor_domain.connect, "libvirt URI");
  doctor->callback([&] {
    bool one = !doctor_domain.domain.empty() || !doctor_domain.file.empty();
    status = print_checks(one ? check_domain(doctor_domain) : check_host());
  });

  HookArgs hook_args;
  auto* hook = app.add_subcommand("hook", "Run as libvirt's hook: DOMAIN OPERATION SUB EXTRA");
  hook->add_option("domain", hook_args.domain)->required();
  hook->add_option("operation", hook_args.operation)->required();
  hook->add_option("sub", hook_args.sub)->required();
  hook->add_option("extra", hook_args.extra);
  std::string hook_config_dir;
  hook->add_option("--config-dir", hook_config_dir,
                   "Read policy.conf, sockhook.conf and plugins/ from here (tests)");
  hook->callback([&] { status = run_hook(hook_args, hook_config_dir); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints help and version to stdout with exit 0; usage errors exit 2 (SPEC §6).
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return status;
}

}  // namespace sockhook
