#include "commands/hook_entry.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
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

/// prepare/start: parse → policy gate → configuration, users, identity, sources → plan →
/// (dry run: log) → execute. migrate (on the target, before the incoming QEMU is prepared):
/// the same up to the plan, and nothing executed.
int lend_sockets(const HookArgs& args, std::string_view xml, HookAction action,
                 const std::string& config_dir) {
  const bool is_start = action == HookAction::kStart;
  const auto started = std::chrono::steady_clock::now();  // the sockets' waits count from here
  const auto& name = args.domain;
  // Stage 1: parse the XML (its problems bounded); a domain without our metadata costs
  // nothing more.
  Gathered g;
  g.domain = parse_domain_xml(xml);
  if (!g.domain.has_metadata && g.domain.diagnostics.empty()) return 0;
  // Stage 2: root's rules, then the policy gate: a domain the policy allows nothing costs one
  // line, and nothing of any owner's is looked at (issue 22).
  GatherOptions options;
  auto conf = config_path();
  if (!config_dir.empty()) {
    conf = config_dir + "/sockhook.conf";
    options.policy_path = config_dir + "/policy.conf";
    options.plugin_dirs = {{config_dir + "/plugins", true}};
  }
  load_rules(g, options);
  if (auto refusal = policy_refusal(g)) {
    const auto& d = g.domain;
    bool fails = d.has_fatal_error() || std::any_of(d.sockets.begin(), d.sockets.end(),
                                                    [](const auto& s) { return s.required; });
    if (!fails) {
      log_info(name + ": " + refusal->text() + " (optional sockets skipped)");
      return 0;
    }
    report(name, refusal->text());
    return 1;
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
    return 1;
  }
  // Stage 4: a migration's check and a dry run stop here. The target lends for itself, under
  // its own policy, when libvirt prepares the incoming QEMU; what this host cannot lend is
  // refused now, in the one line above, before any migration starts.
  if (action == HookAction::kMigrate) {
    log_info(name + ": migrate: this host will lend " + std::to_string(plan.sockets.size()) +
             " socket(s) when the incoming domain is prepared");
    return 0;
  }
  if (config.dry_run) {
    log_info(name + ": dry run, " + args.operation + " would do:\n" + format_plan(plan));
    return 0;
  }
  // Stage 5: execute through the journal.
  ExecContext ctx{options.paths};
  ctx.started = started;
  if (is_start) {
    execute_start(plan, ctx);
  } else {
    execute_prepare(plan, ctx);
  }
  log_info(name + ": " + args.operation + " done, " + std::to_string(plan.sockets.size()) +
           " socket(s) lent");
  return 0;
}

/// release end: undo the domain's journal, newest first. Never fails the VM.
void release_lends(const HookArgs& args, std::string_view xml, const Paths& paths) {
  auto uuid = uuid_of(xml);
  if (uuid.empty()) return;
  ExecContext ctx{paths};
  for (const auto& p : execute_release(uuid, ctx)) log_warning(args.domain + ": " + p);
}

/// reconnect begin (libvirtd restarted): restart dead proxies, and re-bind bind lends whose
/// server restarted meanwhile (docs/contract.md §4: the mount pins the old inode; where / is
/// shared, as under systemd, the new mount reaches QEMU's namespace too). Lends again only
/// what the policy still allows (issue 22, item 5); a policy that cannot be read allows
/// nothing.
void reconnect_lends(const HookArgs& args, std::string_view xml, const Paths& paths,
                     const std::string& config_dir) {
  auto uuid = uuid_of(xml);
  if (uuid.empty()) return;
  ExecContext ctx{paths};
  Policy policy;
  try {
    policy = load_policy(config_dir.empty() ? policy_path() : config_dir + "/policy.conf");
  } catch (const Error& e) {
    log_warning(args.domain + ": reconnect: nothing is lent again: " + e.what());
  }
  auto problems = execute_reconnect(uuid, ctx, policy);
  try {
    auto refreshed = refresh_lends(ctx, uuid, policy, DeadProxies::kLeave);
    for (const auto& s : refreshed.done)
      log_info(args.domain + ": " + s + ": stale bind lend re-bound");
    problems.insert(problems.end(), refreshed.problems.begin(), refreshed.problems.end());
  } catch (const Error&) {
    // No journal for this domain: nothing to re-bind.
  }
  for (const auto& p : problems) log_warning(args.domain + ": " + p);
}

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
  // Only prepare, start and migrate may stop the VM; a failed release or reconnect would
  // leave it running without its lends (or kill it), so they log and exit 0.
  const bool may_refuse = action == HookAction::kPrepare || action == HookAction::kStart ||
                          action == HookAction::kMigrate;
  Paths paths;
  try {
    // Read all of stdin first, whatever the operation, so that libvirt never sees EPIPE.
    const auto xml = read_stdin();
    // Session mode (qemu:///session runs the same hook as the user) and every operation we
    // do not handle (restore, started, stopped...): nothing to do.
    if (::geteuid() != 0 || action == HookAction::kNone) return 0;
    // A domain without our metadata: nothing to lend; and nothing to undo unless some journal
    // exists (release must run even when the metadata was removed from a running domain).
    if (!may_have_metadata(xml) && (may_refuse || !any_journal(paths))) return 0;
    log_open();
    switch (action) {
      case HookAction::kPrepare:
      case HookAction::kStart:
      case HookAction::kMigrate:
        return lend_sockets(args, xml, action, config_dir);
      case HookAction::kRelease:
        release_lends(args, xml, paths);
        return 0;
      case HookAction::kReconnect:
        reconnect_lends(args, xml, paths, config_dir);
        return 0;
      case HookAction::kNone:
        return 0;
    }
    return 0;
  } catch (const std::exception& e) {
    // The hook's one error exit: one line on stderr (libvirt shows it) when the VM must not
    // start, a log line otherwise.
    const bool expected = dynamic_cast<const Error*>(&e) != nullptr;
    const std::string why = expected ? e.what() : std::string("unexpected error: ") + e.what();
    log_open();
    if (!may_refuse) {
      log_error(args.domain + ": " + args.operation + ": " + why);
      return 0;
    }
    report(args.domain, why);
    return 1;
  }
}

}  // namespace sockhook
