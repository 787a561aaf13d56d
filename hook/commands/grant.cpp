#include "commands/grant.hpp"

#include <unistd.h>

#include <cstdio>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"
#include "commands/annotate.hpp"
#include "commands/pkexec.hpp"
#include "host/virt.hpp"
#include "model/domain_xml.hpp"
#include "model/policy.hpp"
#include "sys/users.hpp"

namespace sockhook {

namespace {

/// The system's libvirt: the hook serves its domains (pkexec cleared LIBVIRT_DEFAULT_URI, and
/// the caller chooses no daemon).
constexpr const char* kSystemUri = "qemu:///system";

const char* verb(const ConsentRequest& r) { return r.revoke ? "revoke" : "grant"; }

/// Whether a socket, as written in the domain, is the caller's (by uid: the owner may be
/// written as a name, a number or "+N").
bool is_callers(const SocketRequest& s, const User& caller) {
  auto owner = lookup_user(s.owner, true);
  return owner && owner->uid == caller.uid;
}

/// annotate's options for the caller: only the domain, plugin, method and capture come from
/// the request; the owner is the caller; the policy file and the plugin directories are the
/// defaults (root-owned), as the hook reads them.
AnnotateOptions annotate_options(const ConsentRequest& r, const User& caller) {
  AnnotateOptions o;
  o.domain = r.domain;
  o.request.plugin = r.plugin;
  o.request.owner = caller.name;
  if (!r.method.empty()) o.request.method = r.method;
  o.request.capture = r.capture;
  o.policy_file = policy_path();
  o.connect = kSystemUri;  // the daemon whose definition was checked above
  return o;
}

}  // namespace

int ask_consent(const ConsentRequest& r) {
  const std::string who = r.domain;
  // Stage 1: what can be told without privilege, before asking anyone for a password.
  if (::geteuid() == 0) {
    print_error(who + ": " + verb(r) +
                " is the owner's: run it as the owner (root uses 'sockhook annotate --owner')");
    return 2;
  }
  if (!r.revoke && r.plugin.empty()) {
    print_error(who + ": grant needs --plugin");
    return 2;
  }
  if (!r.plugin.empty() && !is_valid_plugin_name(r.plugin)) {
    print_error(who + ": '" + r.plugin + "' is not a plugin name");
    return 2;
  }
  if (!r.method.empty() && !parse_method(r.method)) {
    print_error(who + ": --method must be one of auto, bind, proxy, acl, group, context");
    return 2;
  }
  // Stage 2: this program's internal subcommand through pkexec. The options come first and
  // "--" ends them, so that a domain named like an option stays a domain.
  std::vector<std::string> args = {kConsentCommand, verb(r)};
  if (!r.plugin.empty()) args.insert(args.end(), {"--plugin", r.plugin});
  if (r.capture) args.emplace_back("--capture");
  if (!r.method.empty()) args.insert(args.end(), {"--method", r.method});
  args.insert(args.end(), {"--", r.domain});
  return run_through_pkexec(
      {r.plugin.empty() ? who : who + ": " + r.plugin, kGrantAction, "nothing changed"}, args);
}

int run_consent(const ConsentRequest& r) {
  std::string who = r.domain;
  auto done = attempt([&] {
    // Stage 1: the caller, from pkexec only.
    auto caller = caller_from_pkexec(kConsentCommand);
    if (!r.method.empty() && !parse_method(r.method))
      throw Error("--method must be one of auto, bind, proxy, acl, group, context");
    if (!r.revoke && r.plugin.empty()) throw Error("grant needs --plugin");
    // Stage 2: the domain's persistent definition, through the system's libvirt.
    Virt virt(kSystemUri);
    auto domain = parse_domain_xml(virt.xml_for_edit(r.domain));
    who = domain.name;
    if (!r.revoke) {
      // Stage 3 (grant): a socket of the same name that another owner lends stays theirs;
      // annotate would otherwise rewrite its owner.
      for (const auto& s : domain.sockets)
        if (s.name == r.plugin && !is_callers(s, caller))
          throw Error(r.plugin + ": the socket '" + s.name + "' of this domain is " + s.owner +
                      "'s, not " + caller.name + "'s; nothing changed");
      // Stage 4: what root's `sockhook annotate DOMAIN --plugin P --owner CALLER` does: the
      // plugin is looked up in root's plugin directories, the owner checked, the domain
      // defined again and the allowance recorded (S5).
      return run_annotate(annotate_options(r, caller));
    }
    // Stage 3 (revoke): the caller's own sockets (of the plugin, if named), and only those.
    std::vector<std::string> names;
    for (const auto& s : domain.sockets)
      if (is_callers(s, caller) && (r.plugin.empty() || s.plugin == r.plugin))
        names.push_back(s.name);
    if (names.empty())
      throw Error("no socket of " + caller.name + "'s" +
                  (r.plugin.empty() ? std::string() : " lends '" + r.plugin + "'") +
                  " to this domain; nothing changed");
    // Stage 4: root's `sockhook annotate DOMAIN --remove --name N`, for each.
    int status = 0;
    for (const auto& name : names) {
      auto o = annotate_options(r, caller);
      o.request = AnnotateRequest{};
      o.request.remove = true;
      o.request.name = name;
      if (int s = run_annotate(o); s != 0) status = s;
    }
    return status;
  });
  if (done) return *done.value;
  print_error(who + ": " + done.what());
  return 1;
}

}  // namespace sockhook
