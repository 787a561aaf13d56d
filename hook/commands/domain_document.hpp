#pragma once

// The domain's XML as `sockhook annotate` edits it, in place: parsed keeping every byte it
// does not change and written back the same, with elements inserted and removed at the
// indentation of their neighbours, and our own metadata (<sockhook:sockets>, and the
// <sockhook:added> records of what annotate added) found or made. Pure: pugixml only.
// What to add for a socket, and how to take it back, is commands/domain_edit.cpp;
// model/domain_xml.hpp reads the same metadata for the hook.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pugixml.hpp>

namespace sockhook {

/// Inserts element `name` right after `ref`, a child of `parent`, indented like `ref`.
pugi::xml_node insert_after(pugi::xml_node parent, const pugi::xml_node& ref, const char* name);

/// Inserts element `name` right before `ref`, a child of `parent`, indented like `ref`.
pugi::xml_node insert_before(pugi::xml_node parent, const pugi::xml_node& ref, const char* name);

/// Appends element `name` after `parent`'s last element, indented like its siblings (or one
/// level deeper than `parent` when it has none).
pugi::xml_node append_element(pugi::xml_node parent, const char* name);

/// Removes `node` and the indentation that precedes it: the undo of the inserts above.
void remove_element(pugi::xml_node node);

/// True if `node` has a child element.
bool has_elements(const pugi::xml_node& node);

/// True if `el` has attribute `name` with exactly this value.
bool attr_is(const pugi::xml_node& el, const char* name, std::string_view value);

/// The last child `name` of `parent` whose attribute `attribute` is `value`; null if none.
pugi::xml_node last_child_with(const pugi::xml_node& parent, const char* name,
                               const char* attribute, std::string_view value);

/// A domain's XML document, parsed for an edit that `save` writes back byte for byte where
/// nothing changed: whitespace, comments, the declaration and each element's quote style.
class DomainDocument {
 public:
  /// Parses `xml`; throws Error when it does not parse, its root is not <domain>, or it has
  /// more than one of our <sockets> elements.
  explicit DomainDocument(std::string_view xml);

  /// The document as text: the input exactly, where nothing was changed.
  std::string save() const;

  pugi::xml_node domain() const { return domain_; }
  /// <devices>, null if the domain has none.
  pugi::xml_node devices() const { return domain_.child("devices"); }
  /// Our <sockets> element in <metadata>, null until ensure_sockets.
  pugi::xml_node sockets() const { return sockets_; }
  /// The prefix our elements get ("sockhook" unless the document binds another to our URI).
  const std::string& ns_prefix() const { return ns_prefix_; }

  /// Our <sockets> element, created (with <metadata> if need be) on first use.
  pugi::xml_node ensure_sockets();

  /// Our <socket> elements, in document order.
  std::vector<pugi::xml_node> socket_elements() const;

  /// Our socket whose effective name (name= or plugin=) is `name`; null if none.
  pugi::xml_node find_socket(const std::string& name) const;

  /// A socket element's effective name: name= if it has one, else plugin=.
  static std::string effective_name(const pugi::xml_node& s);

  /// Appends a <sockhook:added kind=...> record to `holder`.
  pugi::xml_node record(pugi::xml_node holder, const char* kind);

  /// The <sockhook:added> records of `holder` whose kind is `kind`.
  static std::vector<pugi::xml_node> records(const pugi::xml_node& holder, std::string_view kind);

  /// The audio element a record refers to: by id when it has one, else by type.
  pugi::xml_node find_audio(const std::string& id, const std::string& type) const;

  /// <qemu:commandline>, null if the domain has none.
  pugi::xml_node commandline() const;

  /// The prefix that <domain> declares for libvirt's QEMU namespace ("" if none).
  std::string qemu_prefix() const;

  /// True if any element or attribute below <domain> uses `prefix`.
  bool uses_prefix(const std::string& prefix) const;

 private:
  void find_sockets();

  pugi::xml_document doc_;
  pugi::xml_node domain_;
  pugi::xml_node sockets_;
  std::string ns_prefix_ = "sockhook";
  bool single_quotes_ = true;
  bool metadata_single_quotes_ = true;  ///< for metadata elements we add
  std::vector<std::pair<pugi::xml_node, bool>> quote_styles_;
  std::string prefix_, suffix_;
};

}  // namespace sockhook
