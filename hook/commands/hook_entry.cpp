#include "commands/hook_entry.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string_view>

#include <pugixml.hpp>

#include "base/error.hpp"
#include "base/log.hpp"
#include "commands/recorded_lends.hpp"
#include "execute/executor.hpp"
#include "model/config.hpp"
#include "model/policy.hpp"
#include "plan/gather.hpp"
#include "plan/pipeline.hpp"
#include "plan/plan.hpp"
#include "plan/plan_text.hpp"
#include "sys/fd.hpp"

namespace sockhook {
namespace {

/// libvirt writes the XML to our stdin and waits for us; read it all (bounded), so that it
/// never sees EPIPE. A terminal on stdin means a person ran us by hand: no XML.
std::string read_stdin() { return ::isatty(STDIN_FILENO) ? std::string() : read_domain_xml("-"); }

/// One line on stderr, which libvirt appends to the error `virsh start` prints.
void report(const std::string& domain, const std::string& line) {
  auto msg = "sockhook: error: " + domain + ": " + line;
  log_error(msg);
  std::fprintf(stderr, "%s\n", msg.c_str());
}

/// True if the state directory holds any journal: release must run even when the metadata
/// was removed from a running domain.
bool any_journal(const Paths& paths) {
  Dir d(::opendir(paths.state_dir.c_str()));
  if (!d) return false;
  bool found = false;
  while (auto* e = ::readdir(d.get())) {
    std::string_view n = e->d_name;
    if (n.size() > 4 && n.ends_with(".xml")) {
      found = true;
      break;
    }
  }
  return found;
}

/// One call of the hook, as every handler sees it.
struct HookCall {
  const HookArgs& args;
  std::string_view xml;
  const std::string& config_dir;
  Paths paths;
  /// When the call began: the sockets' waits count from here.
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

/// What prepare, start and migrate plan: the plan, or the hook's exit status when it stops
/// before one (no metadata, refused, dry run...).
struct Planned {
  std::optional<Plan> plan;
  int status = 0;
  bool dry_run = false;

  /// Stopped before a plan, with exit status `status`.
  static Planned stopped(int status) {
    Planned p;
    p.status = status;
    return p;
  }
};

/// The stages before a lend: parse → policy gate → configuration, users, identity, sources →
/// plan. Problems are reported here, one line each.
Planned plan_lends(const HookCall& call) {
  const auto& name = call.args.domain;
  // Stage 1: parse the XML (its problems bounded); a domain without our metadata costs
  // nothing more.
  Gathered g;
  g.domain = parse_domain_xml(call.xml);
  if (!g.domain.has_metadata && g.domain.diagnostics.empty()) return Planned::stopped(0);
  // Stage 2: root's rules, then the policy gate: a domain the policy allows nothing costs one
  // line, and nothing of any owner's is looked at (issue 22).
  GatherOptions options;
  options.paths = call.paths;  // planned where the executor will act
  auto conf = config_path();
  if (!call.config_dir.empty()) {
    conf = call.config_dir + "/sockhook.conf";
    options.policy_path = call.config_dir + "/policy.conf";
    options.plugin_dirs = {{call.config_dir + "/plugins", true}};
  }
  load_rules(g, options);
  if (auto refusal = policy_refusal(g)) {
    const auto& d = g.domain;
    bool fails = d.has_fatal_error() || std::any_of(d.sockets.begin(), d.sockets.end(),
                                                    [](const auto& s) { return s.required; });
    if (!fails) {
      log_info(name + ": " + refusal->text() + " (optional sockets skipped)");
      return Planned::stopped(0);
    }
    report(name, refusal->text());
    return Planned::stopped(1);
  }
  // Stage 3: configuration, users, QEMU's identity, the allowed sources; then the plan.
  auto config = load_config(conf);
  gather_host(g, options);
  Plan plan = make_plan(g.inputs);
  for (const auto& w : plan.warnings) log_warning(name + ": " + w.text());
  for (const auto& s : plan.sockets)
    for (const auto& w : s.warnings) log_warning(name + ": " + s.request.name + ": " + w.text());
  if (plan.failed()) {
    for (const auto& e : plan.errors) report(name, e.text());
    return Planned::stopped(1);
  }
  return {std::move(plan), 0, config.dry_run};
}

/// prepare and start: plan, then (unless a dry run) `execute` the plan through the journal.
int lend(const HookCall& call, void (*execute)(const Plan&, const ExecContext&)) {
  auto planned = plan_lends(call);
  if (!planned.plan) return planned.status;
  const auto& plan = *planned.plan;
  const auto& name = call.args.domain;
  if (planned.dry_run) {
    log_info(name + ": dry run, " + call.args.operation + " would do:\n" + format_plan(plan));
    return 0;
  }
  ExecContext ctx{call.paths};
  ctx.started = call.started;
  execute(plan, ctx);
  log_info(name + ": " + call.args.operation + " done, " + std::to_string(plan.sockets.size()) +
           " socket(s) lent");
  return 0;
}

/// prepare begin: the plan lent as one transaction.
int on_prepare(const HookCall& call) { return lend(call, execute_prepare); }

/// start begin: the plan made from the XML that carries QEMU's DAC label; lent again if prepare
/// lent to another identity.
int on_start(const HookCall& call) { return lend(call, execute_start); }

/// migrate begin (on the target, before the incoming QEMU is prepared): the same stages up to
/// the plan, and nothing executed. The target lends for itself, under its own policy, when
/// libvirt prepares the incoming QEMU; what this host cannot lend is refused now, in one line,
/// before any migration starts.
int on_migrate(const HookCall& call) {
  auto planned = plan_lends(call);
  if (!planned.plan) return planned.status;
  log_info(call.args.domain + ": migrate: this host will lend " +
           std::to_string(planned.plan->sockets.size()) +
           " socket(s) when the incoming domain is prepared");
  return 0;
}

/// release end: undo the domain's journal, newest first. Never fails the VM.
int on_release(const HookCall& call) {
  auto uuid = uuid_of(call.xml);
  if (uuid.empty()) return 0;
  ExecContext ctx{call.paths};
  for (const auto& p : execute_release(uuid, ctx)) log_warning(call.args.domain + ": " + p);
  return 0;
}

/// reconnect begin (libvirtd restarted): restart dead proxies, and re-bind bind lends whose
/// server restarted meanwhile (docs/contract.md §4: the mount pins the old inode; where / is
/// shared, as under systemd, the new mount reaches QEMU's namespace too). Lends again only
/// what the policy still allows (issue 22, item 5); a policy that cannot be read allows
/// nothing. Never fails the VM.
int on_reconnect(const HookCall& call) {
  const auto& args = call.args;
  auto uuid = uuid_of(call.xml);
  if (uuid.empty()) return 0;
  ExecContext ctx{call.paths};
  const auto& config_dir = call.config_dir;
  auto loaded = attempt([&] {
    return load_policy(config_dir.empty() ? policy_path() : config_dir + "/policy.conf");
  });
  if (!loaded) log_warning(args.domain + ": reconnect: nothing is lent again: " + loaded.what());
  const Policy policy = loaded ? std::move(*loaded.value) : Policy();
  auto problems = execute_reconnect(uuid, ctx, policy);
  // No journal for this domain: nothing to re-bind.
  if (auto refreshed =
          value_or_none([&] { return refresh_lends(ctx, uuid, policy, DeadProxies::kLeave); })) {
    for (const auto& s : refreshed->done)
      log_info(args.domain + ": " + s + ": stale bind lend re-bound");
    problems.insert(problems.end(), refreshed->problems.begin(), refreshed->problems.end());
  }
  for (const auto& p : problems) log_warning(args.domain + ": " + p);
  return 0;
}

/// What the hook does for each operation. Only prepare, start and migrate may stop the VM; a
/// failed release or reconnect would leave it running without its lends (or kill it), so they
/// log and exit 0.
struct Handler {
  HookAction action;
  bool may_refuse;
  int (*run)(const HookCall&);
};
constexpr Handler kHandlers[] = {
    {HookAction::kPrepare, true, on_prepare},      {HookAction::kStart, true, on_start},
    {HookAction::kMigrate, true, on_migrate},      {HookAction::kRelease, false, on_release},
    {HookAction::kReconnect, false, on_reconnect},
};

}  // namespace

std::string uuid_of(std::string_view xml) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return {};
  auto uuid = to_lower(doc.child("domain").child_value("uuid"));
  return is_valid_uuid(uuid) ? uuid : std::string();
}

HookAction hook_action(const HookArgs& args) {
  const auto& op = args.operation;
  if (op == "prepare" && args.sub == "begin") return HookAction::kPrepare;
  if (op == "start" && args.sub == "begin") return HookAction::kStart;
  if (op == "release" && args.sub == "end") return HookAction::kRelease;
  if (op == "reconnect" && args.sub == "begin") return HookAction::kReconnect;
  if (op == "migrate" && args.sub == "begin") return HookAction::kMigrate;
  return HookAction::kNone;
}

bool invoked_as_hook(const std::string& argv0) {
  std::string_view p = argv0;
  return p.ends_with("/hooks/qemu") || p.find("/hooks/qemu.d/") != std::string_view::npos;
}

int run_hook(const HookArgs& args, const std::string& config_dir) {
  const auto action = hook_action(args);
  const Handler* handler = nullptr;
  for (const auto& h : kHandlers)
    if (h.action == action) handler = &h;
  // Read all of stdin first, whatever the operation, so that libvirt never sees EPIPE.
  auto run = attempt<std::exception>([&] {
    const auto xml = read_stdin();
    HookCall call{args, xml, config_dir, Paths{}};
    // Session mode (qemu:///session runs the same hook as the user) and every operation we
    // do not handle (restore, started, stopped...): nothing to do.
    if (::geteuid() != 0 || !handler) return 0;
    // A domain without our metadata: nothing to lend; and nothing to undo unless some journal
    // exists (release must run even when the metadata was removed from a running domain).
    if (!may_have_metadata(xml) && (handler->may_refuse || !any_journal(call.paths))) return 0;
    log_open();
    return handler->run(call);
  });
  if (run) return *run.value;
  // The hook's one error exit: one line on stderr (libvirt shows it) when the VM must not
  // start, a log line otherwise.
  const std::string why = run.unexpected ? "unexpected error: " + run.what() : run.what();
  log_open();
  if (!handler || !handler->may_refuse) {
    log_error(args.domain + ": " + args.operation + ": " + why);
    return 0;
  }
  report(args.domain, why);
  return 1;
}

}  // namespace sockhook
