#include "commands/domain_edit.hpp"

#include <algorithm>
#include <iterator>

#include <pugixml.hpp>

#include "base/error.hpp"
#include "commands/domain_document.hpp"
#include "model/domain_xml.hpp"
#include "model/xml_ns.hpp"
#include "plan/pipeline.hpp"

namespace sockhook {
namespace {

// How the transform works
//
// The document keeps every byte it does not change (commands/domain_document.hpp), so that
// adding and then removing gives back the input exactly.
//
// Every change is recorded inside our own metadata element, which libvirt keeps verbatim:
//   <sockhook:socket ...>                           per-socket changes, undone with it:
//     <sockhook:added kind="qemu-env" name="PULSE_COOKIE"/>          (old="..." if replaced)
//     <sockhook:added kind="audio-attribute" audio-id="1" audio-type="pulseaudio"
//                     attribute="serverName"/>                      (old="..." if replaced)
//     <sockhook:added kind="audio" audio-id="1" audio-type="pulseaudio"/>  (old-type="none"
//                                                  if an <audio type='none'> was retyped)
//     <sockhook:added kind="graphics" graphics-type="sdl"/>   QEMU's own display window
//   <sockhook:added kind="qemu-commandline"/>      domain-wide, removed when nothing uses
//   <sockhook:added kind="qemu-namespace"/>        them any more (children of <sockets>)
//   <sockhook:added kind="sound" model="ich9"/>
//   <sockhook:added kind="metadata"/>

constexpr const char* kSoundModel = "ich9";
/// The X authority file of an SDL display that annotate adds: never created (see
/// ensure_graphics).
constexpr const char* kSdlXauth = "{lend_dir}/no-xauthority";

/// Sets `attribute` back to the value that record `r` kept under `old_key`; with none kept (the
/// annotation created it), calls `remove` instead.
template <typename Remove>
void restore_or(const pugi::xml_node& r, const char* old_key, pugi::xml_attribute attribute,
                Remove remove) {
  if (auto old = r.attribute(old_key)) {
    attribute.set_value(old.value());
  } else {
    remove();
  }
}

std::string audio_ref(const std::string& type, const std::string& id) {
  return "<audio" + (id.empty() ? "" : " id='" + id + "'") + " type='" + type + "'>";
}

/// The environment that one socket needs, computed by the planner itself, so that annotate
/// writes exactly what plan and the hook will look for.
struct Needs {
  std::vector<EnvNeed> env;
  Variables vars;
};

Needs plan_needs(const DomainInfo& parsed, const std::string& socket, const AnnotateContext& ctx) {
  const auto& plugin = *ctx.plugin;
  const auto& owner = *ctx.owner;
  auto req = std::find_if(parsed.sockets.begin(), parsed.sockets.end(),
                          [&](const SocketRequest& s) { return s.name == socket; });
  if (req == parsed.sockets.end())
    throw Error(socket + ": cannot annotate: the socket did not parse");
  // What the hook would refuse for this socket, annotate refuses too.
  for (const auto& d : parsed.diagnostics)
    if (d.error && d.required && (d.socket.empty() || d.socket == socket))
      throw Error(d.socket.empty() ? d.message : d.socket + ": " + d.message);
  if (auto why = owner_refusal(owner, req->owner, ctx.uids)) throw Error(socket + ": " + *why);
  // Without a look at the host, auto plans as bind (as the planner does).
  auto method = req->method == Method::kAuto ? Method::kBind : req->method;
  auto lend_dir = ctx.paths.lend_dir(parsed.uuid);
  auto place = socket_place(plugin, owner, method, ctx.paths, lend_dir);
  auto vars = socket_variables(ctx.paths, owner, place.target, lend_dir);
  return {socket_environment(plugin, parsed, vars), vars};
}

class Annotator {
 public:
  Annotator(DomainDocument& ed, AnnotateResult& result) : ed_(ed), result_(result) {}

  /// Undoes what `socket` recorded, newest first, and drops the records.
  void undo(pugi::xml_node socket) {
    std::vector<pugi::xml_node> recs;
    for (auto c : socket.children())
      if (is_element(c, kMetadataNs, "added")) recs.push_back(c);
    for (auto it = recs.rbegin(); it != recs.rend(); ++it) {
      undo_one(socket, *it);
      remove_element(*it);
    }
  }

  /// Removes what nobody uses any more: domain-wide additions whose users are gone.
  void collect_garbage() {
    auto sockets = ed_.sockets();
    if (!sockets) return;
    auto sockets_left = ed_.socket_elements();
    for (auto r : DomainDocument::records(sockets, "qemu-commandline")) {
      auto cl = ed_.commandline();
      if (cl && has_elements(cl)) continue;
      if (cl) remove_element(cl);
      remove_element(r);
    }
    for (auto r : DomainDocument::records(sockets, "qemu-namespace")) {
      auto prefix = ed_.qemu_prefix();
      if (!prefix.empty() && ed_.uses_prefix(prefix)) continue;
      if (!prefix.empty()) ed_.domain().remove_attribute(("xmlns:" + prefix).c_str());
      remove_element(r);
    }
    bool audio_in_use = false;
    for (auto s : sockets_left)
      audio_in_use |= !DomainDocument::records(s, "audio").empty() ||
                      !DomainDocument::records(s, "audio-attribute").empty();
    for (auto r : DomainDocument::records(sockets, "sound")) {
      if (audio_in_use) continue;
      if (auto last =
              last_child_with(ed_.devices(), "sound", "model", r.attribute("model").value()))
        remove_element(last);
      remove_element(r);
    }
    if (!sockets_left.empty()) return;
    // No socket left: our element goes, and <metadata> too if we made it and it is empty.
    bool made_metadata = !DomainDocument::records(sockets, "metadata").empty();
    auto metadata = sockets.parent();
    remove_element(sockets);
    if (made_metadata && !has_elements(metadata)) remove_element(metadata);
  }

  /// Gives QEMU what the socket needs: audio backend, native attributes, qemu:env.
  void apply(pugi::xml_node socket, const Plugin& plugin, const Needs& needs,
             unsigned long libvirt_version) {
    if (!plugin.audio_backend.empty()) ensure_audio(socket, plugin.audio_backend);
    if (!plugin.graphics.empty()) ensure_graphics(socket, plugin.graphics, needs.vars);
    for (const auto& need : needs.env) {
      const PluginAudioAttr* native = nullptr;
      for (const auto& alt : plugin.audio)
        if (alt.covers == need.name && libvirt_version >= alt.min_libvirt) native = &alt;
      if (native) {
        auto audio = ensure_audio(socket, native->audio_type);
        set_audio_attribute(socket, audio, native->audio_type, native->attribute,
                            expand(native->value, needs.vars), need.name);
        warn_shadowing_env(need.name);
      } else {
        set_env(socket, need.name, need.value);
      }
    }
  }

 private:
  void note(std::string line) { result_.notes.push_back(std::move(line)); }

  /// Finds another socket's record that claims the same thing; nullptr-like if none.
  pugi::xml_node claimed_by_other(const pugi::xml_node& socket, std::string_view kind,
                                  const char* key, std::string_view value,
                                  const char* key2 = nullptr, std::string_view value2 = {}) {
    for (auto s : ed_.socket_elements()) {
      if (s == socket) continue;
      for (auto r : DomainDocument::records(s, kind))
        if (attr_is(r, key, value) && (!key2 || attr_is(r, key2, value2))) return s;
    }
    return {};
  }

  pugi::xml_node ensure_audio(pugi::xml_node socket, const std::string& type) {
    auto devices = ed_.devices();
    if (!devices) throw Error(name(socket) + ": cannot add <audio>: the domain has no <devices>");
    for (auto a : devices.children("audio"))
      if (attr_is(a, "type", type)) return a;
    if (!devices.child("sound")) {
      auto first_audio = devices.child("audio");
      auto sound = first_audio ? insert_before(devices, first_audio, "sound")
                               : append_element(devices, "sound");
      sound.append_attribute("model") = kSoundModel;
      ed_.record(ed_.sockets(), "sound").append_attribute("model") = kSoundModel;
      note("added <sound model='" + std::string(kSoundModel) + "'/>: the domain had no sound card");
    }
    // A default <audio type='none'> (libvirt adds one for a sound card without graphics) is
    // what the user wants replaced.
    for (auto a : devices.children("audio")) {
      if (!attr_is(a, "type", "none")) continue;
      a.attribute("type").set_value(type.c_str());
      auto r = ed_.record(socket, "audio");
      r.append_attribute("audio-id") = a.attribute("id").value();
      r.append_attribute("audio-type") = type.c_str();
      r.append_attribute("old-type") = "none";
      note("changed " + audio_ref("none", a.attribute("id").value()) + " to type='" + type + "'");
      return a;
    }
    long max_id = 0;
    pugi::xml_node last_audio;
    for (auto a : devices.children("audio")) {
      max_id = std::max(max_id, a.attribute("id").as_llong(0) > 0
                                    ? static_cast<long>(a.attribute("id").as_llong())
                                    : 0L);
      last_audio = a;
    }
    pugi::xml_node anchor = last_audio;
    if (!anchor)
      for (auto s : devices.children("sound")) anchor = s;
    auto audio = anchor ? insert_after(devices, anchor, "audio") : append_element(devices, "audio");
    auto id = std::to_string(max_id + 1);
    audio.append_attribute("id") = id.c_str();
    audio.append_attribute("type") = type.c_str();
    auto r = ed_.record(socket, "audio");
    r.append_attribute("audio-id") = id.c_str();
    r.append_attribute("audio-type") = type.c_str();
    note("added " + audio_ref(type, id));
    if (last_audio)
      note("the domain has other <audio> backends: make its <sound> use this one with <audio id='" +
           id + "'/>");
    return audio;
  }

  /// A <graphics type=...> for QEMU's own display (e.g. SDL on the owner's Wayland), unless
  /// the domain has one of that type. libvirt lists graphics before sound, audio and video.
  ///
  /// SDL gets an xauth naming a file in the lend directory that never exists: libvirt's
  /// virt-aa-helper refuses an SDL display without one ("invalid VM definition"), so under
  /// AppArmor the VM would not start. A Wayland client reads no X authority; the profile
  /// only gains a read rule for a path nobody can create (the lend directory is root's).
  void ensure_graphics(pugi::xml_node socket, const std::string& type, const Variables& vars) {
    auto devices = ed_.devices();
    if (!devices)
      throw Error(name(socket) + ": cannot add <graphics>: the domain has no <devices>");
    for (auto g : devices.children("graphics")) {
      if (!attr_is(g, "type", type)) continue;
      if (type == "sdl" && !g.attribute("xauth"))
        note(
            "the domain's <graphics type='sdl'> has no xauth: under AppArmor libvirt refuses "
            "to start it (virt-aa-helper: invalid VM definition); give it xauth='" +
            expand(kSdlXauth, vars) + "' or the owner's X authority file");
      return;
    }
    pugi::xml_node before;
    for (const char* n : {"sound", "audio", "video"})
      if (!before) before = devices.child(n);
    auto g =
        before ? insert_before(devices, before, "graphics") : append_element(devices, "graphics");
    g.append_attribute("type") = type.c_str();
    std::string shown = "<graphics type='" + type + "'";
    if (type == "sdl") {
      const auto xauth = expand(kSdlXauth, vars);
      g.append_attribute("xauth") = xauth.c_str();
      shown += " xauth='" + xauth + "'";
    }
    ed_.record(socket, "graphics").append_attribute("graphics-type") = type.c_str();
    note("added " + shown + "/>: QEMU opens its own display window");
    if (attr_is(socket, "required", "no"))
      note("required='no' does not make the display optional: QEMU's " + type +
           " display, and so the VM, does not start while the compositor is away");
    bool has_video = false;
    for (auto v : devices.children("video"))
      has_video |= !attr_is(v.child("model"), "type", "none");
    if (!has_video)
      note("the domain has no video device: libvirt adds a default one, or give it <video>");
  }

  void set_audio_attribute(pugi::xml_node socket, pugi::xml_node audio, const std::string& type,
                           const std::string& attribute, const std::string& value,
                           const std::string& covers) {
    std::string id = audio.attribute("id").value();
    if (auto other =
            claimed_by_other(socket, "audio-attribute", "attribute", attribute, "audio-type", type))
      throw Error(name(socket) + ": cannot set " + attribute + " on " + audio_ref(type, id) +
                  ": socket '" + DomainDocument::effective_name(other) + "' sets it already");
    // "output.serverName": the attribute of the <output> child.
    pugi::xml_node target = audio;
    std::string attr = attribute;
    std::string child;
    if (auto dot = attribute.find('.'); dot != std::string::npos) {
      child = attribute.substr(0, dot);
      attr = attribute.substr(dot + 1);
      target = audio.child(child.c_str());
    }
    auto existing = target ? target.attribute(attr.c_str()) : pugi::xml_attribute();
    if (existing && value == existing.value()) return;  // already right: nothing to undo
    auto r = ed_.record(socket, "audio-attribute");
    r.append_attribute("audio-id") = id.c_str();
    r.append_attribute("audio-type") = type.c_str();
    r.append_attribute("attribute") = attribute.c_str();
    if (!target) {
      target = append_element(audio, child.c_str());
      r.append_attribute("created-child") = "yes";
    }
    if (existing) {
      r.append_attribute("old") = existing.value();
      note("replaced " + attribute + "='" + existing.value() + "' on " + audio_ref(type, id));
      existing.set_value(value.c_str());
    } else {
      target.append_attribute(attr.c_str()) = value.c_str();
    }
    note("set " + attribute + "='" + value + "' on " + audio_ref(type, id) + " (instead of " +
         covers + ")");
  }

  void warn_shadowing_env(const std::string& env) {
    auto cl = ed_.commandline();
    if (!cl) return;
    for (auto e : cl.children())
      if (is_element(e, kQemuNs, "env") && attr_is(e, "name", env))
        note("the domain also sets <qemu:env name='" + env + "' value='" +
             e.attribute("value").value() + "'>; the native attribute takes precedence");
  }

  pugi::xml_node ensure_commandline() {
    if (auto cl = ed_.commandline()) return cl;
    auto prefix = ed_.qemu_prefix();
    if (prefix.empty()) {
      prefix = "qemu";
      if (ed_.domain().attribute("xmlns:qemu"))
        throw Error(
            "cannot add <qemu:commandline>: the prefix 'qemu' is bound to another namespace");
      ed_.domain().append_attribute("xmlns:qemu") = kQemuNs.data();
      ed_.record(ed_.sockets(), "qemu-namespace");
    }
    auto cl = append_element(ed_.domain(), (prefix + ":commandline").c_str());
    ed_.record(ed_.sockets(), "qemu-commandline");
    return cl;
  }

  void set_env(pugi::xml_node socket, const std::string& env, const std::string& value) {
    if (auto other = claimed_by_other(socket, "qemu-env", "name", env))
      throw Error(name(socket) + ": cannot set " + env + " for QEMU: socket '" +
                  DomainDocument::effective_name(other) + "' sets it already");
    auto cl = ensure_commandline();
    for (auto e : cl.children()) {
      if (!is_element(e, kQemuNs, "env") || !attr_is(e, "name", env)) continue;
      if (attr_is(e, "value", value)) return;  // already right: nothing to undo
      auto r = ed_.record(socket, "qemu-env");
      r.append_attribute("name") = env.c_str();
      r.append_attribute("old") = e.attribute("value").value();
      note("replaced <qemu:env name='" + env + "' value='" + e.attribute("value").value() + "'>");
      e.attribute("value").set_value(value.c_str());
      return;
    }
    auto el = append_element(cl, (std::string(prefix_of(cl.name())) + ":env").c_str());
    el.append_attribute("name") = env.c_str();
    el.append_attribute("value") = value.c_str();
    ed_.record(socket, "qemu-env").append_attribute("name") = env.c_str();
    note("added <qemu:env name='" + env + "' value='" + value + "'>");
  }

  void undo_one(pugi::xml_node socket, pugi::xml_node r) {
    std::string_view kind = r.attribute("kind").value();
    if (kind == "qemu-env") {
      auto cl = ed_.commandline();
      for (auto e : cl.children()) {
        if (!is_element(e, kQemuNs, "env") || !attr_is(e, "name", r.attribute("name").value()))
          continue;
        restore_or(r, "old", e.attribute("value"), [&] { remove_element(e); });
        break;
      }
    } else if (kind == "audio-attribute") {
      auto audio =
          ed_.find_audio(r.attribute("audio-id").value(), r.attribute("audio-type").value());
      if (!audio) return;
      std::string attribute = r.attribute("attribute").value();
      pugi::xml_node target = audio;
      if (auto dot = attribute.find('.'); dot != std::string::npos) {
        target = audio.child(attribute.substr(0, dot).c_str());
        attribute = attribute.substr(dot + 1);
      }
      if (!target) return;
      restore_or(r, "old", target.attribute(attribute.c_str()),
                 [&] { target.remove_attribute(attribute.c_str()); });
      if (attr_is(r, "created-child", "yes") && !target.first_attribute() && !has_elements(target))
        remove_element(target);
    } else if (kind == "graphics") {
      // The last one of its type: libvirt keeps the order, and ours was the only one.
      if (auto last = last_child_with(ed_.devices(), "graphics", "type",
                                      r.attribute("graphics-type").value()))
        remove_element(last);
    } else if (kind == "audio") {
      std::string id = r.attribute("audio-id").value();
      auto audio = ed_.find_audio(id, r.attribute("audio-type").value());
      if (!audio) return;
      // Another socket still sets attributes on this backend: it inherits the record.
      if (auto heir = claimed_by_other(socket, "audio-attribute", "audio-id", id)) {
        auto copy = ed_.record(heir, "audio");
        for (auto a : r.attributes())
          if (std::string_view(a.name()) != "kind") copy.append_attribute(a.name()) = a.value();
        return;
      }
      restore_or(r, "old-type", audio.attribute("type"), [&] { remove_element(audio); });
    }
  }

  static std::string name(const pugi::xml_node& socket) {
    return DomainDocument::effective_name(socket);
  }

  DomainDocument& ed_;
  AnnotateResult& result_;
};

/// Writes the socket element's attributes from the request (an update replaces them all).
void set_socket_attributes(pugi::xml_node socket, const AnnotateRequest& req) {
  std::vector<std::string> drop;
  for (auto a : socket.attributes())
    if (!std::string_view(a.name()).starts_with("xmlns")) drop.emplace_back(a.name());
  for (const auto& n : drop) socket.remove_attribute(n.c_str());
  socket.append_attribute("plugin") = req.plugin.c_str();
  socket.append_attribute("owner") = req.owner.c_str();
  if (req.method) socket.append_attribute("method") = req.method->c_str();
  if (!req.required) socket.append_attribute("required") = "no";
  if (req.wait_seconds) socket.append_attribute("wait") = *req.wait_seconds;
  if (req.capture) socket.append_attribute("capture") = "yes";
  if (!req.name.empty()) socket.append_attribute("name") = req.name.c_str();
}

}  // namespace

AnnotateResult annotate_xml(std::string_view xml, const AnnotateRequest& req,
                            const AnnotateContext& ctx) {
  DomainDocument ed(xml);
  AnnotateResult result;
  auto domain = ed.domain();
  result.domain = domain.child_value("name");
  result.uuid = to_lower(domain.child_value("uuid"));
  result.socket = req.name.empty() ? req.plugin : req.name;
  Annotator an(ed, result);

  if (req.remove) {
    auto socket = ed.find_socket(result.socket);
    if (!socket) {
      result.xml = std::string(xml);
      result.notes.push_back("no socket named '" + result.socket + "': nothing to remove");
      return result;
    }
    result.removed_plugin = socket.attribute("plugin").value();
    result.removed_owner = socket.attribute("owner").value();
    an.undo(socket);
    remove_element(socket);
    an.collect_garbage();
    for (auto s : ed.socket_elements())
      if (attr_is(s, "plugin", result.removed_plugin) && attr_is(s, "owner", result.removed_owner))
        result.allowance_still_needed = true;
  } else {
    if (!ctx.plugin || !ctx.owner) throw Error("cannot annotate: no plugin or owner given");
    if (!is_valid_uuid(result.uuid))
      throw Error(
          "cannot annotate: the domain has no valid <uuid> (lends are keyed by UUID; "
          "define it in libvirt first or add one)");
    ed.ensure_sockets();
    auto socket = ed.find_socket(result.socket);
    if (socket) {
      // An update: take back what the old attributes needed, then apply the new ones.
      an.undo(socket);
    } else {
      socket = append_element(ed.sockets(), (ed.ns_prefix() + ":socket").c_str());
    }
    set_socket_attributes(socket, req);
    // Validate with the real parser: exactly what the hook will accept, or its reason.
    auto parsed = parse_domain_xml(ed.save());
    for (const auto& d : parsed.diagnostics)
      if (d.error && (d.socket == result.socket || d.socket.empty()))
        throw Error((d.socket.empty() ? "" : d.socket + ": ") + d.message);
    an.apply(socket, *ctx.plugin, plan_needs(parsed, result.socket, ctx), ctx.libvirt_version);
    // S9: never silently; the same line as `plan` and `doctor` (reach_line). A context lend
    // is restricted by the server: plan says what it lets the VM see, not this.
    if (!ctx.plugin->reach.empty() && !attr_is(socket, "method", "context"))
      result.notes.push_back(reach_line(result.socket, ctx.plugin->reach));
  }
  result.xml = ed.save();
  result.changed = result.xml != xml;
  return result;
}

}  // namespace sockhook