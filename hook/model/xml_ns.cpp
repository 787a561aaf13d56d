#include "model/xml_ns.hpp"

namespace sockhook {

std::string_view local_name(std::string_view qname) {
  auto colon = qname.find(':');
  return colon == std::string_view::npos ? qname : qname.substr(colon + 1);
}

std::string_view prefix_of(std::string_view qname) {
  auto colon = qname.find(':');
  return colon == std::string_view::npos ? std::string_view() : qname.substr(0, colon);
}

std::string namespace_of(const pugi::xml_node& node) {
  auto prefix = prefix_of(node.name());
  std::string attr = prefix.empty() ? std::string("xmlns") : "xmlns:" + std::string(prefix);
  for (auto n = node; n; n = n.parent()) {
    if (auto a = n.attribute(attr.c_str())) return a.value();
  }
  return {};
}

bool is_element(const pugi::xml_node& node, std::string_view ns, std::string_view local) {
  return node.type() == pugi::node_element && local_name(node.name()) == local &&
         namespace_of(node) == ns;
}

}  // namespace sockhook
