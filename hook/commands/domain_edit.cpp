#include "commands/domain_edit.hpp"

#include <algorithm>
#include <iterator>
#include <sstream>

#include <pugixml.hpp>

#include "base/error.hpp"
#include "model/domain_xml.hpp"
#include "model/xml_ns.hpp"
#include "plan/pipeline.hpp"

namespace sockhook {
namespace {

// How the transform works
//
// The document is parsed keeping every whitespace, comment and declaration node and written
// back raw, so that untouched parts stay byte for byte as they were. Each element we insert
// gets a copy of the indentation its neighbour has, and each removal takes that whitespace
// away again; so adding and then removing gives back the input exactly.
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

constexpr unsigned kParseFlags = pugi::parse_cdata | pugi::parse_escapes | pugi::parse_eol |
                                 pugi::parse_pi | pugi::parse_comments | pugi::parse_declaration |
                                 pugi::parse_doctype | pugi::parse_ws_pcdata;
constexpr const char* kSoundModel = "ich9";
/// The X authority file of an SDL display that annotate adds: never created (see
/// ensure_graphics).
constexpr const char* kSdlXauth = "{lend_dir}/no-xauthority";

std::string prefix_of(const pugi::xml_node& node) {
  std::string_view qname = node.name();
  auto colon = qname.find(':');
  return colon == std::string_view::npos ? std::string() : std::string(qname.substr(0, colon));
}

bool is_blank_text(const pugi::xml_node& node) {
  if (node.type() != pugi::node_pcdata) return false;
  std::string_view v = node.value();
  return v.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

/// The whitespace node just before `node`, if there is one.
pugi::xml_node whitespace_before(const pugi::xml_node& node) {
  auto prev = node.previous_sibling();
  return is_blank_text(prev) ? prev : pugi::xml_node();
}

pugi::xml_node last_element(const pugi::xml_node& parent) {
  for (auto n = parent.last_child(); n; n = n.previous_sibling())
    if (n.type() == pugi::node_element) return n;
  return {};
}

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

/// Inserts element `name` right after (or before) `ref`, indented like `ref`.
pugi::xml_node insert_beside(pugi::xml_node parent, const pugi::xml_node& ref, const char* name,
                             bool after) {
  auto el = after ? parent.insert_child_after(name, ref) : parent.insert_child_before(name, ref);
  // The first of the two now has ref's indentation before it; a copy goes between them.
  const auto& first = after ? ref : el;
  if (auto ws = whitespace_before(first))
    parent.insert_child_after(pugi::node_pcdata, first).set_value(ws.value());
  return el;
}

pugi::xml_node insert_after(pugi::xml_node parent, const pugi::xml_node& ref, const char* name) {
  return insert_beside(parent, ref, name, true);
}

pugi::xml_node insert_before(pugi::xml_node parent, const pugi::xml_node& ref, const char* name) {
  return insert_beside(parent, ref, name, false);
}

/// Appends element `name` after `parent`'s last element, indented like its siblings (or one
/// level deeper than `parent` when it has none).
pugi::xml_node append_element(pugi::xml_node parent, const char* name) {
  if (auto last = last_element(parent)) return insert_after(parent, last, name);
  auto outer = whitespace_before(parent);
  std::string outer_ws = outer ? outer.value() : "";
  auto newline = outer_ws.rfind('\n');
  if (newline == std::string::npos) return parent.append_child(name);  // unindented document
  std::string indent = outer_ws.substr(newline);                       // "\n" + spaces
  std::string inner = indent + "  ";
  auto tail = parent.last_child();
  if (is_blank_text(tail)) {
    auto el = parent.insert_child_before(name, tail);
    parent.insert_child_before(pugi::node_pcdata, el).set_value(inner.c_str());
    return el;
  }
  parent.append_child(pugi::node_pcdata).set_value(inner.c_str());
  auto el = parent.append_child(name);
  parent.append_child(pugi::node_pcdata).set_value(indent.c_str());
  return el;
}

/// Removes `node` and the indentation that precedes it.
void remove_element(pugi::xml_node node) {
  auto parent = node.parent();
  if (auto ws = whitespace_before(node)) parent.remove_child(ws);
  parent.remove_child(node);
}

bool has_elements(const pugi::xml_node& node) { return static_cast<bool>(last_element(node)); }

/// True if `a` has the same value as the text.
bool attr_is(const pugi::xml_node& el, const char* name, std::string_view value) {
  auto a = el.attribute(name);
  return a && std::string_view(a.value()) == value;
}

/// The last child `name` of `parent` whose attribute `attribute` is `value`; null if none.
pugi::xml_node last_child_with(const pugi::xml_node& parent, const char* name,
                               const char* attribute, std::string_view value) {
  pugi::xml_node last;
  for (auto c : parent.children(name))
    if (attr_is(c, attribute, value)) last = c;
  return last;
}

std::string audio_ref(const std::string& type, const std::string& id) {
  return "<audio" + (id.empty() ? "" : " id='" + id + "'") + " type='" + type + "'>";
}

std::string render(const pugi::xml_node& node, bool single_quotes) {
  std::ostringstream out;
  unsigned flags = pugi::format_raw | pugi::format_no_declaration;
  if (single_quotes) flags |= pugi::format_attribute_single_quote;
  node.print(out, "", flags, pugi::encoding_utf8);
  return out.str();
}

/// The document being edited, with the handles every step needs.
class Editor {
 public:
  Editor(std::string_view xml, const AnnotateContext& ctx) : ctx_(ctx) {
    auto result = doc_.load_buffer(xml.data(), xml.size(), kParseFlags, pugi::encoding_utf8);
    if (!result)
      throw Error("cannot parse domain XML: " + std::string(result.description()) + " at offset " +
                  std::to_string(result.offset));
    domain_ = doc_.child("domain");
    if (!domain_) throw Error("cannot parse domain XML: the root element is not <domain>");
    // libvirt quotes attributes with ', hand-written files often with ": keep the style.
    auto first_attr = xml.find("='");
    auto first_dq = xml.find("=\"");
    single_quotes_ = first_attr != std::string_view::npos &&
                     (first_dq == std::string_view::npos || first_attr < first_dq);
    // pugixml keeps no whitespace outside the root element: keep what surrounds it verbatim.
    auto start = static_cast<std::size_t>(domain_.offset_debug());
    prefix_ = start > 0 ? std::string(xml.substr(0, start - 1)) : std::string();
    if (auto end = xml.rfind("</domain>"); end != std::string_view::npos)
      suffix_ = std::string(xml.substr(end + std::string_view("</domain>").size()));
    // Each metadata element's quotes, from the text it was parsed from.
    bool first = true;
    for (auto c : domain_.child("metadata").children()) {
      if (c.type() != pugi::node_element) continue;
      auto at = xml.substr(static_cast<std::size_t>(c.offset_debug()));
      auto sq = at.find("='"), dq = at.find("=\"");
      bool single =
          sq == std::string_view::npos ? single_quotes_ : dq == std::string_view::npos || sq < dq;
      quote_styles_.emplace_back(c, single);
      if (first) metadata_single_quotes_ = single;
      first = false;
    }
    if (first) metadata_single_quotes_ = single_quotes_;
    find_sockets();
  }

  std::string save() const {
    auto text = render(domain_, single_quotes_);
    // libvirt writes its own elements with ' but the metadata it keeps with libxml2, which
    // uses ": give each metadata element back the quotes it came with.
    for (auto c : domain_.child("metadata").children()) {
      if (c.type() != pugi::node_element) continue;
      bool single = metadata_single_quotes_;
      for (const auto& [node, style] : quote_styles_)
        if (node == c) single = style;
      if (single == single_quotes_) continue;
      auto from = render(c, single_quotes_);
      auto to = render(c, single);
      for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    }
    return prefix_ + text + suffix_;
  }

  pugi::xml_node domain() const { return domain_; }
  pugi::xml_node sockets() const { return sockets_; }

  /// Our sockets, by effective name (name= or plugin=).
  pugi::xml_node find_socket(const std::string& name) const {
    for (auto s : socket_elements())
      if (effective_name(s) == name) return s;
    return {};
  }

  std::vector<pugi::xml_node> socket_elements() const {
    std::vector<pugi::xml_node> out;
    if (!sockets_) return out;
    for (auto c : sockets_.children())
      if (is_element(c, kMetadataNs, "socket")) out.push_back(c);
    return out;
  }

  static std::string effective_name(const pugi::xml_node& s) {
    auto n = s.attribute("name");
    return n ? n.value() : s.attribute("plugin").value();
  }

  /// Our <sockets> element, created (with <metadata> if need be) on first use.
  pugi::xml_node ensure_sockets() {
    if (sockets_) return sockets_;
    auto metadata = domain_.child("metadata");
    bool created_metadata = false;
    if (!metadata) {
      pugi::xml_node after;
      for (const char* n : {"name", "uuid", "genid", "title", "description"})
        if (auto c = domain_.child(n)) after = c;
      metadata =
          after ? insert_after(domain_, after, "metadata") : domain_.prepend_child("metadata");
      created_metadata = true;
    }
    sockets_ = append_element(metadata, (ns_prefix_ + ":sockets").c_str());
    sockets_.append_attribute(("xmlns:" + ns_prefix_).c_str()) = kMetadataNs.data();
    if (created_metadata) record(sockets_, "metadata");
    return sockets_;
  }

  /// Appends a <sockhook:added kind=...> record to `holder`.
  pugi::xml_node record(pugi::xml_node holder, const char* kind) {
    auto r = append_element(holder, (ns_prefix_ + ":added").c_str());
    r.append_attribute("kind") = kind;
    return r;
  }

  static std::vector<pugi::xml_node> records(const pugi::xml_node& holder, std::string_view kind) {
    std::vector<pugi::xml_node> out;
    for (auto c : holder.children())
      if (is_element(c, kMetadataNs, "added") && attr_is(c, "kind", kind)) out.push_back(c);
    return out;
  }

  pugi::xml_node devices() const { return domain_.child("devices"); }

  /// The audio element a record refers to: by id when it has one, else by type.
  pugi::xml_node find_audio(const std::string& id, const std::string& type) const {
    for (auto a : devices().children("audio")) {
      if (!id.empty() ? attr_is(a, "id", id) : attr_is(a, "type", type)) return a;
    }
    return {};
  }

  /// <qemu:commandline> and the prefix that <domain> declares for libvirt's QEMU namespace.
  pugi::xml_node commandline() const {
    for (auto c : domain_.children())
      if (is_element(c, kQemuNs, "commandline")) return c;
    return {};
  }

  std::string qemu_prefix() const {
    for (auto a : domain_.attributes()) {
      std::string_view n = a.name();
      if (n.starts_with("xmlns:") && std::string_view(a.value()) == kQemuNs)
        return std::string(n.substr(6));
    }
    return {};
  }

  const AnnotateContext& ctx() const { return ctx_; }
  const std::string& ns_prefix() const { return ns_prefix_; }

  /// True if any element or attribute below <domain> uses `prefix`.
  bool uses_prefix(const std::string& prefix) const {
    auto p = prefix + ":";
    struct Walker : pugi::xml_tree_walker {
      std::string p;
      bool found = false;
      bool for_each(pugi::xml_node& n) override {
        if (n.type() == pugi::node_element) {
          found |= std::string_view(n.name()).starts_with(p);
          for (auto a : n.attributes()) found |= std::string_view(a.name()).starts_with(p);
        }
        return !found;
      }
    } w;
    w.p = p;
    auto root = domain_;  // traverse is not const
    root.traverse(w);
    return w.found;
  }

 private:
  void find_sockets() {
    for (auto el : domain_.child("metadata").children()) {
      if (!is_element(el, kMetadataNs, "sockets")) continue;
      if (sockets_)
        throw Error("the domain has more than one <sockets> element in " +
                    std::string(kMetadataNs) + "; merge them first");
      sockets_ = el;
      auto p = prefix_of(el);
      // An unprefixed element with a default namespace: our children get a prefix of our own.
      if (!p.empty()) ns_prefix_ = p;
    }
    if (sockets_ && prefix_of(sockets_).empty())
      sockets_.append_attribute(("xmlns:" + ns_prefix_).c_str()) = kMetadataNs.data();
  }

  const AnnotateContext& ctx_;
  pugi::xml_document doc_;
  pugi::xml_node domain_;
  pugi::xml_node sockets_;
  std::string ns_prefix_ = "sockhook";
  bool single_quotes_ = true;
  bool metadata_single_quotes_ = true;  ///< for metadata elements we add
  std::vector<std::pair<pugi::xml_node, bool>> quote_styles_;
  std::string prefix_, suffix_;
};

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
  Annotator(Editor& ed, AnnotateResult& result) : ed_(ed), result_(result) {}

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
    for (auto r : Editor::records(sockets, "qemu-commandline")) {
      auto cl = ed_.commandline();
      if (cl && has_elements(cl)) continue;
      if (cl) remove_element(cl);
      remove_element(r);
    }
    for (auto r : Editor::records(sockets, "qemu-namespace")) {
      auto prefix = ed_.qemu_prefix();
      if (!prefix.empty() && ed_.uses_prefix(prefix)) continue;
      if (!prefix.empty()) ed_.domain().remove_attribute(("xmlns:" + prefix).c_str());
      remove_element(r);
    }
    bool audio_in_use = false;
    for (auto s : sockets_left)
      audio_in_use |=
          !Editor::records(s, "audio").empty() || !Editor::records(s, "audio-attribute").empty();
    for (auto r : Editor::records(sockets, "sound")) {
      if (audio_in_use) continue;
      if (auto last =
              last_child_with(ed_.devices(), "sound", "model", r.attribute("model").value()))
        remove_element(last);
      remove_element(r);
    }
    if (!sockets_left.empty()) return;
    // No socket left: our element goes, and <metadata> too if we made it and it is empty.
    bool made_metadata = !Editor::records(sockets, "metadata").empty();
    auto metadata = sockets.parent();
    remove_element(sockets);
    if (made_metadata && !has_elements(metadata)) remove_element(metadata);
  }

  /// Gives QEMU what the socket needs: audio backend, native attributes, qemu:env.
  void apply(pugi::xml_node socket, const Plugin& plugin, const Needs& needs) {
    auto version = ed_.ctx().libvirt_version;
    if (!plugin.audio_backend.empty()) ensure_audio(socket, plugin.audio_backend);
    if (!plugin.graphics.empty()) ensure_graphics(socket, plugin.graphics, needs.vars);
    for (const auto& need : needs.env) {
      const PluginAudioAttr* native = nullptr;
      for (const auto& alt : plugin.audio)
        if (alt.covers == need.name && version >= alt.min_libvirt) native = &alt;
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
      for (auto r : Editor::records(s, kind))
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
                  ": socket '" + Editor::effective_name(other) + "' sets it already");
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
                  Editor::effective_name(other) + "' sets it already");
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
    auto el = append_element(cl, (prefix_of(cl) + ":env").c_str());
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

  static std::string name(const pugi::xml_node& socket) { return Editor::effective_name(socket); }

  Editor& ed_;
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
  Editor ed(xml, ctx);
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
    an.apply(socket, *ctx.plugin, plan_needs(parsed, result.socket, ctx));
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
