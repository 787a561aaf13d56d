#pragma once

#include <string>
#include <string_view>

#include <pugixml.hpp>

namespace sockhook {

/// The part of a qualified XML name after the colon ("sockhook:socket" → "socket").
std::string_view local_name(std::string_view qname);
/// The part of a qualified XML name before the colon ("qemu:env" → "qemu"; "" for none).
std::string_view prefix_of(std::string_view qname);

/// The namespace URI that applies to `node`, found by walking up to the nearest xmlns
/// declaration for its prefix (pugixml does not resolve namespaces itself). Elements are
/// matched on this URI, never on a prefix.
std::string namespace_of(const pugi::xml_node& node);

/// True if `node` is an element named `local` in namespace `ns`.
bool is_element(const pugi::xml_node& node, std::string_view ns, std::string_view local);

}  // namespace sockhook
