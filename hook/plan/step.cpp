#include "plan/step.hpp"

#include <algorithm>
#include <tuple>
#include <type_traits>

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include "host/domain_cgroup.hpp"
#include "plan/journal_attr.hpp"

namespace sockhook {

using journal_attr::for_each_field;
using journal_attr::IsOptional;

std::string describe(const Step& step) {
  return std::visit([](const auto& s) { return s.describe(); }, step);
}

std::string describe_undo(const Step& step) {
  return std::visit([](const auto& s) { return s.describe_undo(); }, step);
}

nlohmann::json to_json(const Step& step) {
  return std::visit(
      [](const auto& s) {
        nlohmann::json j{{"action", s.kAction}};
        for_each_field(s, [&](const auto& field, const auto& value) {
          if constexpr (IsOptional<std::decay_t<decltype(value)>>::value) {
            if (value) j[field.json] = *value;
          } else {
            j[field.json] = value;
          }
        });
        return j;
      },
      step);
}

void write_step(pugi::xml_node parent, const Step& step) {
  using namespace journal_attr;
  auto n = parent.append_child("step");
  std::visit(
      [&](const auto& s) {
        put(n, "action", std::string(s.kAction));
        put_fields(n, s);
      },
      step);
}

Step read_step(const pugi::xml_node& n) {
  using namespace journal_attr;
  auto action = text(n, "action");
  auto step = alternative_named<Step, ByAction>(action);
  if (!step) corrupt("unknown step action '" + action + "'");
  std::visit([&](auto& s) { get_fields(n, s); }, *step);
  return *step;
}

std::string StartProxy::describe() const {
  auto domain = DomainCgroup::parse(peer_domain.value_or(""));
  auto cgroup = !domain          ? std::string("(none recorded: the proxy is not started)")
                : domain->id < 0 ? describe_domain_cgroup(*domain) + " (<id>: libvirt's at start)"
                                 : describe_domain_cgroup(*domain);
  auto to = context_source()
                ? "the context socket " + source + " through a descriptor the hook hands it (fd 4)"
                : source;
  return "listen on " + listen_path + " (owner uid " + std::to_string(qemu_uid) +
         ", 0600) and start a proxy as uid " + std::to_string(owner) + " that connects to " + to +
         " per client, serving only uid " + std::to_string(qemu_uid) + " in cgroup " + cgroup;
}

std::string StartContext::describe() const {
  auto listen =
      "listen on " + listen_path + " (owner uid " + std::to_string(socket_uid()) +
      (private_socket() ? ", 0600: only the proxy in front of it reaches it)" : ", 0600)");
  if (wayland())
    return listen + " and start a holder as uid " + std::to_string(owner) +
           " that makes it a Wayland security context on " + source +
           " (wp_security_context_v1: engine org.sockhook, app id " + domain + ", instance id " +
           uuid + ") and holds it until release";
  return listen + " and start a holder as uid " + std::to_string(owner) +
         " that makes it a PipeWire security context on " + source +
         " (pipewire.sec.engine=org.sockhook, pipewire.access=" +
         (capture ? "sockhook-capture" : "sockhook") + ", domain " + domain + ", uuid " + uuid +
         ") and holds it until release";
}

bool makes_wayland_context(const std::vector<Step>& steps) {
  return std::any_of(steps.begin(), steps.end(), [](const Step& step) {
    const auto* c = std::get_if<StartContext>(&step);
    return c && c->wayland();
  });
}

const Step* serving_step(const std::vector<Step>& steps, const std::string& path) {
  for (const auto& step : steps) {
    if (const auto* p = std::get_if<StartProxy>(&step); p && p->listen_path == path) return &step;
    if (const auto* c = std::get_if<StartContext>(&step); c && c->listen_path == path) return &step;
  }
  return nullptr;
}

}  // namespace sockhook
