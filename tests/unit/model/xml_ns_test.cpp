#include "model/xml_ns.hpp"

#include <string>

#include <doctest/doctest.h>
#include <pugixml.hpp>

namespace sockhook {
namespace {

constexpr const char* kNs = "http://example.org/ns";

TEST_CASE("local_name drops the prefix") {
  CHECK(local_name("sockhook:socket") == "socket");
  CHECK(local_name("socket") == "socket");
}

TEST_CASE("Elements are matched by namespace URI, never by prefix") {
  pugi::xml_document doc;
  REQUIRE(
      doc.load_string("<root xmlns:a='http://example.org/ns' xmlns:b='http://other'>"
                      "<a:item/><b:item/><item/>"
                      "<c:item xmlns:c='http://example.org/ns'/>"
                      "<wrap xmlns='http://example.org/ns'><item/></wrap></root>"));
  auto root = doc.child("root");
  auto a = root.child("a:item");
  auto b = root.child("b:item");
  auto plain = root.child("item");
  auto c = root.child("c:item");
  auto inner = root.child("wrap").child("item");
  CHECK(namespace_of(a) == kNs);
  CHECK(namespace_of(b) == "http://other");
  CHECK(namespace_of(plain).empty());
  CHECK(namespace_of(c) == kNs);
  CHECK(namespace_of(inner) == kNs);
  CHECK(is_element(a, kNs, "item"));
  CHECK(is_element(c, kNs, "item"));
  CHECK(is_element(inner, kNs, "item"));
  CHECK_FALSE(is_element(b, kNs, "item"));
  CHECK_FALSE(is_element(plain, kNs, "item"));
  CHECK_FALSE(is_element(a, kNs, "other"));
}

}  // namespace
}  // namespace sockhook
