#include "commands/domain_document.hpp"

#include <sstream>

#include "base/error.hpp"
#include "model/domain_xml.hpp"
#include "model/xml_ns.hpp"

namespace sockhook {
namespace {

// How the document keeps its bytes
//
// The document is parsed keeping every whitespace, comment and declaration node and written
// back raw, so that untouched parts stay byte for byte as they were. Each element we insert
// gets a copy of the indentation its neighbour has, and each removal takes that whitespace
// away again; so adding and then removing gives back the input exactly.

constexpr unsigned kParseFlags = pugi::parse_cdata | pugi::parse_escapes | pugi::parse_eol |
                                 pugi::parse_pi | pugi::parse_comments | pugi::parse_declaration |
                                 pugi::parse_doctype | pugi::parse_ws_pcdata;

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

std::string render(const pugi::xml_node& node, bool single_quotes) {
  std::ostringstream out;
  unsigned flags = pugi::format_raw | pugi::format_no_declaration;
  if (single_quotes) flags |= pugi::format_attribute_single_quote;
  node.print(out, "", flags, pugi::encoding_utf8);
  return out.str();
}

}  // namespace

pugi::xml_node insert_after(pugi::xml_node parent, const pugi::xml_node& ref, const char* name) {
  return insert_beside(parent, ref, name, true);
}

pugi::xml_node insert_before(pugi::xml_node parent, const pugi::xml_node& ref, const char* name) {
  return insert_beside(parent, ref, name, false);
}

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

void remove_element(pugi::xml_node node) {
  auto parent = node.parent();
  if (auto ws = whitespace_before(node)) parent.remove_child(ws);
  parent.remove_child(node);
}

bool has_elements(const pugi::xml_node& node) { return static_cast<bool>(last_element(node)); }

bool attr_is(const pugi::xml_node& el, const char* name, std::string_view value) {
  auto a = el.attribute(name);
  return a && std::string_view(a.value()) == value;
}

pugi::xml_node last_child_with(const pugi::xml_node& parent, const char* name,
                               const char* attribute, std::string_view value) {
  pugi::xml_node last;
  for (auto c : parent.children(name))
    if (attr_is(c, attribute, value)) last = c;
  return last;
}

DomainDocument::DomainDocument(std::string_view xml) {
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

std::string DomainDocument::save() const {
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

pugi::xml_node DomainDocument::ensure_sockets() {
  if (sockets_) return sockets_;
  auto metadata = domain_.child("metadata");
  bool created_metadata = false;
  if (!metadata) {
    pugi::xml_node after;
    for (const char* n : {"name", "uuid", "genid", "title", "description"})
      if (auto c = domain_.child(n)) after = c;
    metadata = after ? insert_after(domain_, after, "metadata") : domain_.prepend_child("metadata");
    created_metadata = true;
  }
  sockets_ = append_element(metadata, (ns_prefix_ + ":sockets").c_str());
  sockets_.append_attribute(("xmlns:" + ns_prefix_).c_str()) = kMetadataNs.data();
  if (created_metadata) record(sockets_, "metadata");
  return sockets_;
}

std::vector<pugi::xml_node> DomainDocument::socket_elements() const {
  std::vector<pugi::xml_node> out;
  if (!sockets_) return out;
  for (auto c : sockets_.children())
    if (is_element(c, kMetadataNs, "socket")) out.push_back(c);
  return out;
}

pugi::xml_node DomainDocument::find_socket(const std::string& name) const {
  for (auto s : socket_elements())
    if (effective_name(s) == name) return s;
  return {};
}

std::string DomainDocument::effective_name(const pugi::xml_node& s) {
  auto n = s.attribute("name");
  return n ? n.value() : s.attribute("plugin").value();
}

pugi::xml_node DomainDocument::record(pugi::xml_node holder, const char* kind) {
  auto r = append_element(holder, (ns_prefix_ + ":added").c_str());
  r.append_attribute("kind") = kind;
  return r;
}

std::vector<pugi::xml_node> DomainDocument::records(const pugi::xml_node& holder,
                                                    std::string_view kind) {
  std::vector<pugi::xml_node> out;
  for (auto c : holder.children())
    if (is_element(c, kMetadataNs, "added") && attr_is(c, "kind", kind)) out.push_back(c);
  return out;
}

pugi::xml_node DomainDocument::find_audio(const std::string& id, const std::string& type) const {
  for (auto a : devices().children("audio")) {
    if (!id.empty() ? attr_is(a, "id", id) : attr_is(a, "type", type)) return a;
  }
  return {};
}

pugi::xml_node DomainDocument::commandline() const {
  for (auto c : domain_.children())
    if (is_element(c, kQemuNs, "commandline")) return c;
  return {};
}

std::string DomainDocument::qemu_prefix() const {
  for (auto a : domain_.attributes()) {
    std::string_view n = a.name();
    if (n.starts_with("xmlns:") && std::string_view(a.value()) == kQemuNs)
      return std::string(n.substr(6));
  }
  return {};
}

bool DomainDocument::uses_prefix(const std::string& prefix) const {
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

void DomainDocument::find_sockets() {
  for (auto el : domain_.child("metadata").children()) {
    if (!is_element(el, kMetadataNs, "sockets")) continue;
    if (sockets_)
      throw Error("the domain has more than one <sockets> element in " + std::string(kMetadataNs) +
                  "; merge them first");
    sockets_ = el;
    auto p = prefix_of(el.name());
    // An unprefixed element with a default namespace: our children get a prefix of our own.
    if (!p.empty()) ns_prefix_ = p;
  }
  if (sockets_ && prefix_of(sockets_.name()).empty())
    sockets_.append_attribute(("xmlns:" + ns_prefix_).c_str()) = kMetadataNs.data();
}

}  // namespace sockhook
