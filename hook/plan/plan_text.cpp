#include "plan/plan_text.hpp"

#include <sstream>

#include <nlohmann/json.hpp>

namespace sockhook {

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
            {"method_note", s.method_note},
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
