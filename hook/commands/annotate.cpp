#include "commands/annotate.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "base/error.hpp"
#include "base/log.hpp"
#include "host/virt.hpp"
#include "model/domain_xml.hpp"
#include "model/policy.hpp"
#include "plan/pipeline.hpp"
#include "sys/file.hpp"

namespace sockhook {

std::optional<unsigned long> parse_libvirt_version(std::string_view text) {
  auto number = [](std::string_view t) -> std::optional<unsigned long> {
    unsigned long v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
    return v;
  };
  if (text.find('.') == std::string_view::npos) return number(text);
  std::vector<unsigned long> parts;
  for (std::size_t start = 0;;) {
    auto dot = text.find('.', start);
    auto part = number(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (!part || *part > 999) return std::nullopt;
    parts.push_back(*part);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) return std::nullopt;
  parts.resize(3, 0);
  return parts[0] * 1000000 + parts[1] * 1000 + parts[2];
}

namespace {

void print_note(const std::string& domain, const std::string& line) {
  std::fprintf(stderr, "sockhook: %s: %s\n", domain.c_str(), line.c_str());
}

std::string version_text(unsigned long v) {
  return std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." +
         std::to_string(v % 1000);
}

/// Records or revokes the allowance (S5). Only root can, and only root should.
void update_policy(const AnnotateOptions& o, const AnnotateResult& r) {
  auto policy = load_policy(o.policy_file);
  const auto& req = o.request;
  if (!req.remove) {
    auto user = lookup_user(req.owner);
    if (policy.allow(r.uuid, policy_owner_key(user->name, user->uid), req.plugin)) {
      save_policy(policy, o.policy_file);
      print_note(r.domain, "policy: " + user->name + " may now lend '" + req.plugin + "' to " +
                               r.uuid + " (" + o.policy_file + ")");
    }
    return;
  }
  if (r.removed_plugin.empty() || r.allowance_still_needed) return;
  auto user = lookup_user(r.removed_owner);
  auto owner = user ? policy_owner_key(user->name, user->uid) : r.removed_owner;
  if (policy.revoke(r.uuid, owner, r.removed_plugin)) {
    save_policy(policy, o.policy_file);
    print_note(r.domain,
               "policy: " + owner + " may no longer lend '" + r.removed_plugin + "' to " + r.uuid);
  }
}

}  // namespace

int run_annotate(const AnnotateOptions& o) {
  const auto& req = o.request;
  std::string who = o.domain.empty() ? o.file : o.domain;
  // Usage: what must be there depends on adding or removing.
  if (!req.remove && (req.plugin.empty() || req.owner.empty())) {
    print_error(who + ": annotate needs --plugin and --owner (or --remove)");
    return 2;
  }
  if (req.remove && req.plugin.empty() && req.name.empty()) {
    print_error(who + ": annotate --remove needs --plugin or --name");
    return 2;
  }
  if (!o.output.empty() && o.file.empty()) {
    print_error(who + ": -o needs --file");
    return 2;
  }
  if (req.method && !parse_method(*req.method)) {
    print_error(who + ": --method must be one of auto, bind, proxy, acl, group, context");
    return 2;
  }
  std::optional<unsigned long> forced_version;
  if (!o.libvirt_version.empty()) {
    forced_version = parse_libvirt_version(o.libvirt_version);
    if (!forced_version) {
      print_error(who + ": --libvirt-version '" + o.libvirt_version + "' is not like 9.0.0");
      return 2;
    }
  }

  AnnotateResult result;
  bool running = false;
  auto done = attempt([&] {
    // Stage 1: the plugin and the owner, as the hook will see them.
    PluginSet plugins;
    AnnotateContext ctx;
    ctx.uids = regular_uid_range();
    if (!req.remove) {
      plugins = load_plugins(o.plugin_dirs, {0});
      ctx.plugin = plugins.find(req.plugin);
      if (!ctx.plugin) throw Error(req.plugin + ": " + plugins.why_missing(req.plugin));
      ctx.owner = lookup_user(req.owner);
      if (!ctx.owner)
        throw Error(req.plugin + ": owner '" + req.owner + "' is not a user on this host");
    }
    // Stage 2: the XML and libvirt's version (the daemon's; offline: the installed library's).
    std::unique_ptr<Virt> virt;
    std::string xml;
    if (!o.file.empty()) {
      xml = read_domain_xml(o.file);
      if (forced_version) {
        ctx.libvirt_version = *forced_version;
      } else {
        ctx.libvirt_version = Virt::installed_version();
      }
    } else {
      virt = std::make_unique<Virt>(o.connect);
      xml = virt->xml_for_edit(o.domain);
      ctx.libvirt_version = forced_version ? *forced_version : virt->version();
      running = virt->is_active(o.domain);
    }
    // Stage 3: the transform, pure.
    result = annotate_xml(xml, req, ctx);
    if (who.empty() || !o.file.empty()) who = result.domain.empty() ? o.file : result.domain;
    for (const auto& n : result.notes) print_note(who, n);
    // Stage 4: write it back.
    if (virt) {
      if (result.changed) virt->define(result.xml);
    } else if (o.output.empty()) {
      std::fwrite(result.xml.data(), 1, result.xml.size(), stdout);
    } else {
      std::ofstream out(o.output, std::ios::binary | std::ios::trunc);
      out << result.xml;
      out.close();
      if (!out) throw Error("cannot write " + o.output);
    }
    if (virt && !result.changed) print_note(who, "already annotated; nothing changed");
    if (virt && result.changed && running)
      print_note(who, "the domain is running: the change applies at its next start");
    if (virt && result.changed)
      print_note(who, std::string(req.remove ? "removed" : "annotated") + " socket '" +
                          result.socket + "' (libvirt " + version_text(ctx.libvirt_version) + ")");
    // Stage 5: the policy, root only (S5: a domain-XML editor without root grants nothing).
    if (::geteuid() == 0) {
      update_policy(o, result);
    } else if (!req.remove && virt) {
      print_note(who, "not root: ask root to run 'sockhook policy allow --domain " + result.uuid +
                          " --owner " + req.owner + " --plugin " + req.plugin + "'");
    }
  });
  if (done) return 0;
  print_error(who + ": " + done.what());
  return 1;
}

}  // namespace sockhook
