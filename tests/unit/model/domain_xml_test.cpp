#include "model/domain_xml.hpp"

#include <optional>
#include <string>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "fixtures.hpp"

namespace sockhook {
namespace {

constexpr const char* kUuid = "3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b01";

/// A domain whose <metadata> holds `metadata` verbatim; name and uuid as given.
std::string domain_xml(const std::string& metadata, const std::string& name = "vm1",
                       const std::string& uuid = kUuid, const std::string& extra = "") {
  std::string xml = "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>";
  xml += "<name>" + name + "</name>";
  if (!uuid.empty()) xml += "<uuid>" + uuid + "</uuid>";
  xml += "<metadata>" + metadata + "</metadata>" + extra + "</domain>";
  return xml;
}

/// A domain with one sockhook <sockets> element holding `sockets`.
std::string with_sockets(const std::string& sockets, const std::string& name = "vm1",
                         const std::string& uuid = kUuid) {
  return domain_xml(
      "<sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'>" + sockets + "</sockhook:sockets>",
      name, uuid);
}

int count_errors(const DomainInfo& info) {
  int n = 0;
  for (const auto& d : info.diagnostics) n += d.error ? 1 : 0;
  return n;
}

int count_warnings(const DomainInfo& info) {
  int n = 0;
  for (const auto& d : info.diagnostics) n += d.error ? 0 : 1;
  return n;
}

/// The single diagnostic of `info`; fails the test if there is not exactly one.
Diagnostic only_diagnostic(const DomainInfo& info) {
  REQUIRE(info.diagnostics.size() == 1);
  return info.diagnostics[0];
}

/// The single valid socket of `info`; fails the test if there is not exactly one.
const SocketRequest& only_socket(const DomainInfo& info) {
  REQUIRE(info.sockets.size() == 1);
  return info.sockets[0];
}

TEST_CASE("A socket with only plugin and owner gets the documented defaults") {
  auto info = parse_domain_xml(with_sockets("<sockhook:socket plugin='pipewire' owner='alice'/>"));
  CHECK(info.has_metadata);
  CHECK(info.name == "vm1");
  CHECK(info.uuid == kUuid);
  CHECK(info.diagnostics.empty());
  const auto& s = only_socket(info);
  CHECK(s.plugin == "pipewire");
  CHECK(s.owner == "alice");
  CHECK(s.name == "pipewire");
  CHECK(s.method == Method::kAuto);
  CHECK(s.required);
  CHECK_FALSE(s.wait_seconds.has_value());
  CHECK_FALSE(info.has_fatal_error());
}

TEST_CASE("Every socket attribute is read when it is valid") {
  auto info = parse_domain_xml(with_sockets(
      "<sockhook:socket plugin='wayland' owner='1000' method='bind' required='no' wait='120' "
      "name='display-1'/>"));
  CHECK(info.diagnostics.empty());
  const auto& s = only_socket(info);
  CHECK(s.plugin == "wayland");
  CHECK(s.owner == "1000");
  CHECK(s.method == Method::kBind);
  CHECK_FALSE(s.required);
  CHECK(s.wait_seconds == 120);
  CHECK(s.name == "display-1");
}

TEST_CASE("Each method name parses and prints back") {
  for (auto [text, method] : {std::pair{"auto", Method::kAuto}, std::pair{"bind", Method::kBind},
                              std::pair{"proxy", Method::kProxy}, std::pair{"acl", Method::kAcl},
                              std::pair{"group", Method::kGroup}}) {
    CAPTURE(text);
    CHECK(parse_method(text) == method);
    CHECK(to_string(method) == text);
    auto info = parse_domain_xml(with_sockets(std::string("<sockhook:socket plugin='pipewire' "
                                                          "owner='alice' method='") +
                                              text + "'/>"));
    CHECK(only_socket(info).method == method);
  }
  CHECK_FALSE(parse_method("Bind").has_value());
  CHECK_FALSE(parse_method("").has_value());
}

TEST_CASE("The metadata namespace is matched on its URI, never on its prefix") {
  SUBCASE("our URI under any prefix, a default namespace or an ancestor's is ours") {
    struct Case {
      const char* what;
      std::string xml;
      const char* plugin;
    };
    const Case cases[] = {
        {"another prefix bound to our URI",
         domain_xml("<sh:sockets xmlns:sh='urn:sockhook:domain:1'><sh:socket plugin='pipewire' "
                    "owner='alice'/></sh:sockets>"),
         "pipewire"},
        {"a default namespace on <sockets>",
         domain_xml("<sockets xmlns='urn:sockhook:domain:1'><socket plugin='pulseaudio' "
                    "owner='alice'/></sockets>"),
         "pulseaudio"},
        {"the prefix declared on an ancestor",
         "<domain xmlns:x='urn:sockhook:domain:1'><name>vm1</name><uuid>" + std::string(kUuid) +
             "</uuid><metadata><x:sockets><x:socket plugin='jack' owner='alice'/></x:sockets>"
             "</metadata></domain>",
         "jack"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.what);
      auto info = parse_domain_xml(c.xml);
      CHECK(info.has_metadata);
      CHECK(info.diagnostics.empty());
      CHECK(only_socket(info).plugin == c.plugin);
    }
  }
  SUBCASE("another URI under our prefix, or a future version of ours, is a fatal error") {
    struct Case {
      const char* what;
      const char* uri;
      std::string message;  ///< the whole message, or (first) a part it must contain
      bool exact;
    };
    const Case cases[] = {
        {"our usual prefix bound to another URI", "urn:example:other", "urn:example:other", false},
        {"a future version of our namespace", "urn:sockhook:domain:2",
         "metadata <sockhook:sockets> uses namespace 'urn:sockhook:domain:2'; this sockhook "
         "understands only 'urn:sockhook:domain:1'",
         true},
    };
    for (const auto& c : cases) {
      CAPTURE(c.what);
      auto info =
          parse_domain_xml(domain_xml(std::string("<sockhook:sockets xmlns:sockhook='") + c.uri +
                                      "'><sockhook:socket plugin='pipewire' "
                                      "owner='alice'/></sockhook:sockets>"));
      CHECK_FALSE(info.has_metadata);
      CHECK(info.sockets.empty());
      auto d = only_diagnostic(info);
      CHECK(d.error);
      CHECK(d.socket.empty());
      if (c.exact) {
        CHECK(d.message == c.message);
      } else {
        CHECK(d.message.find(c.message) != std::string::npos);
      }
      CHECK(info.has_fatal_error());
    }
  }
  SUBCASE("a socket element in another namespace inside our <sockets> is ignored with a warning") {
    auto info = parse_domain_xml(
        domain_xml("<sh:sockets xmlns:sh='urn:sockhook:domain:1' xmlns:o='urn:other'>"
                   "<o:socket plugin='pipewire' owner='alice'/></sh:sockets>"));
    CHECK(info.has_metadata);
    CHECK(info.sockets.empty());
    auto d = only_diagnostic(info);
    CHECK_FALSE(d.error);
    CHECK(d.message == "ignoring unknown element <o:socket> in <sockets>");
  }
  SUBCASE("unrelated metadata of other applications is left alone") {
    auto info = parse_domain_xml(domain_xml(
        "<libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>"
        "<libosinfo:os id='http://microsoft.com/win/11'/></libosinfo:libosinfo>"));
    CHECK_FALSE(info.has_metadata);
    CHECK(info.diagnostics.empty());
  }
}

TEST_CASE("Invalid socket attributes make that socket fail with a one-line reason") {
  const std::pair<const char*, const char*> cases[] = {
      {"plugin='pipewire' owner='alice' method='socat'",
       "method='socat' is not one of auto, bind, proxy, acl, group, context"},
      {"plugin='pipewire' owner='alice' method=''",
       "method='' is not one of auto, bind, proxy, acl, group, context"},
      {"plugin='pipewire' owner='alice' required='maybe'",
       "required='maybe' must be 'yes' or 'no'"},
      {"plugin='pipewire' owner='alice' required='YES'", "required='YES' must be 'yes' or 'no'"},
      {"plugin='pipewire' owner='alice' wait='-1'",
       "wait='-1' must be a whole number of seconds from 0 to 120"},
      {"plugin='pipewire' owner='alice' wait='soon'",
       "wait='soon' must be a whole number of seconds from 0 to 120"},
      {"plugin='pipewire' owner='alice' wait='121'",
       "wait='121' must be a whole number of seconds from 0 to 120"},
      {"plugin='pipewire' owner='alice' wait='99999999999999999999'",
       "wait='99999999999999999999' must be a whole number of seconds from 0 to 120"},
      {"plugin='pipewire' owner='alice' wait='5s'",
       "wait='5s' must be a whole number of seconds from 0 to 120"},
      {"plugin='pipewire' owner='alice' wait=''",
       "wait='' must be a whole number of seconds from 0 to 120"},
      {"plugin='pipewire' owner='alice' wait=' 5'",
       "wait=' 5' must be a whole number of seconds from 0 to 120"},
      {"plugin='pipewire' owner='alice' wait='2.5'",
       "wait='2.5' must be a whole number of seconds from 0 to 120"},
      {"owner='alice'", "missing attribute 'plugin'"},
      {"plugin='pipewire'", "missing attribute 'owner'"},
      {"plugin='../pipewire' owner='alice'",
       "plugin='../pipewire' is not a plugin name (plugins are named, never paths)"},
      {"plugin='/usr/share/x' owner='alice'",
       "plugin='/usr/share/x' is not a plugin name (plugins are named, never paths)"},
      {"plugin='pipe/wire' owner='alice'",
       "plugin='pipe/wire' is not a plugin name (plugins are named, never paths)"},
      {"plugin='..' owner='alice'",
       "plugin='..' is not a plugin name (plugins are named, never paths)"},
      {"plugin='' owner='alice'",
       "plugin='' is not a plugin name (plugins are named, never paths)"},
      {"plugin='PipeWire' owner='alice'",
       "plugin='PipeWire' is not a plugin name (plugins are named, never paths)"},
      {"plugin='pipewire' owner='../x'", "owner='../x' is not a user name or uid"},
      {"plugin='pipewire' owner='a/b'", "owner='a/b' is not a user name or uid"},
      {"plugin='pipewire' owner=''", "owner='' is not a user name or uid"},
      {"plugin='pipewire' owner='-alice'", "owner='-alice' is not a user name or uid"},
      {"plugin='pipewire' owner='al ice'", "owner='al ice' is not a user name or uid"},
      {"plugin='pipewire' owner='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
       "owner='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is longer than 32 bytes"},
      {"plugin='pipewire' owner='alice' name='../x'",
       "name='../x' may hold only letters, digits, '.', '_' and '-'"},
      {"plugin='pipewire' owner='alice' name=''",
       "name='' may hold only letters, digits, '.', '_' and '-'"},
      {"plugin='pipewire' owner='alice' name='a b'",
       "name='a b' may hold only letters, digits, '.', '_' and '-'"},
  };
  for (const auto& [attrs, message] : cases) {
    CAPTURE(attrs);
    auto info = parse_domain_xml(with_sockets(std::string("<sockhook:socket ") + attrs + "/>"));
    CHECK(info.sockets.empty());
    auto d = only_diagnostic(info);
    CHECK(d.error);
    CHECK(d.required);
    CHECK(d.message == message);
    CHECK(info.has_fatal_error());
  }
}

TEST_CASE("Every field is bounded: at the bound it is read, one past it is one short line") {
  const std::string at64(64, 'a'), past64(65, 'a'), owner32(32, 'a');
  SUBCASE("at the bounds") {
    auto info = parse_domain_xml(with_sockets("<sockhook:socket name='" + at64 + "' plugin='" +
                                              at64 + "' owner='" + owner32 + "'/>"));
    CHECK(info.diagnostics.empty());
    REQUIRE(info.sockets.size() == 1u);
    CHECK(info.sockets[0].name == at64);
  }
  const std::string huge(4500000, 'a');
  const std::string shown = std::string(64, 'a') + "... (4500000 bytes)";
  const std::pair<std::string, std::string> cases[] = {
      {"plugin='" + past64 + "' owner='alice'",
       "plugin='" + at64 + "... (65 bytes)' is longer than 64 bytes"},
      {"name='" + past64 + "' plugin='pipewire' owner='alice'",
       "name='" + at64 + "... (65 bytes)' is longer than 64 bytes"},
      {"plugin='pipewire' owner='" + huge + "'", "owner='" + shown + "' is longer than 32 bytes"},
      {"plugin='pipewire' owner='alice' method='" + huge + "'",
       "method='" + shown + "' is not one of auto, bind, proxy, acl, group, context"},
      {"plugin='pipewire' owner='alice' wait='" + huge + "'",
       "wait='" + shown + "' must be a whole number of seconds from 0 to 120"},
  };
  for (const auto& [attrs, message] : cases) {
    CAPTURE(message);
    auto info = parse_domain_xml(with_sockets("<sockhook:socket " + attrs + "/>"));
    CHECK(info.sockets.empty());
    CHECK(only_diagnostic(info).message == message);
  }
}

TEST_CASE("An invalid socket is named by name, then plugin, then position") {
  SUBCASE("by name") {
    auto info = parse_domain_xml(
        with_sockets("<sockhook:socket name='snd' plugin='pipewire' owner='alice' method='x'/>"));
    CHECK(only_diagnostic(info).socket == "snd");
  }
  SUBCASE("by plugin") {
    auto info = parse_domain_xml(
        with_sockets("<sockhook:socket plugin='pipewire' owner='alice' method='x'/>"));
    CHECK(only_diagnostic(info).socket == "pipewire");
  }
  SUBCASE("by position when name and plugin are unusable") {
    auto info =
        parse_domain_xml(with_sockets("<sockhook:socket plugin='pipewire' owner='alice'/>"
                                      "<sockhook:socket plugin='../etc' owner='alice'/>"));
    CHECK(info.sockets.size() == 1);
    CHECK(only_diagnostic(info).socket == "socket #2");
  }
}

TEST_CASE("Several problems of one socket are all reported") {
  auto info = parse_domain_xml(
      with_sockets("<sockhook:socket plugin='pipewire' owner='../x' method='socat' wait='5s'/>"));
  CHECK(info.sockets.empty());
  CHECK(count_errors(info) == 3);
}

TEST_CASE("An invalid optional socket fails alone and does not fail the domain") {
  auto info = parse_domain_xml(
      with_sockets("<sockhook:socket plugin='pipewire' owner='alice'/>"
                   "<sockhook:socket plugin='wayland' owner='alice' method='x' required='no'/>"));
  CHECK(only_socket(info).plugin == "pipewire");
  auto d = only_diagnostic(info);
  CHECK(d.error);
  CHECK_FALSE(d.required);
  CHECK(d.socket == "wayland");
  CHECK_FALSE(info.has_fatal_error());
}

TEST_CASE("A bad required= value makes the socket count as required") {
  auto info = parse_domain_xml(
      with_sockets("<sockhook:socket plugin='pipewire' owner='alice' required='no ' wait='x'/>"));
  CHECK(count_errors(info) == 2);
  for (const auto& d : info.diagnostics) CHECK(d.required);
  CHECK(info.has_fatal_error());
}

TEST_CASE("Socket names must be unique within a domain") {
  SUBCASE("two sockets with the same explicit name") {
    auto info = parse_domain_xml(
        with_sockets("<sockhook:socket name='a' plugin='pipewire' owner='alice'/>"
                     "<sockhook:socket name='a' plugin='wayland' owner='alice'/>"));
    CHECK(only_socket(info).plugin == "pipewire");
    auto d = only_diagnostic(info);
    CHECK(d.error);
    CHECK(d.socket == "a");
    CHECK(d.message == "name 'a' is used by another socket of this domain");
    CHECK(info.has_fatal_error());
  }
  SUBCASE("the same plugin twice without names") {
    auto info =
        parse_domain_xml(with_sockets("<sockhook:socket plugin='pipewire' owner='alice'/>"
                                      "<sockhook:socket plugin='pipewire' owner='1000'/>"));
    CHECK(only_socket(info).owner == "alice");
    auto d = only_diagnostic(info);
    CHECK(d.message ==
          "name 'pipewire' is used by another socket of this domain (set name= to tell them "
          "apart)");
  }
  SUBCASE("the same plugin twice with distinct names is fine") {
    auto info = parse_domain_xml(
        with_sockets("<sockhook:socket name='pw1' plugin='pipewire' owner='alice'/>"
                     "<sockhook:socket name='pw2' plugin='pipewire' owner='bob'/>"));
    CHECK(info.diagnostics.empty());
    CHECK(info.sockets.size() == 2);
  }
  SUBCASE("a name equal to another socket's default name") {
    auto info =
        parse_domain_xml(with_sockets("<sockhook:socket plugin='wayland' owner='alice'/>"
                                      "<sockhook:socket name='wayland' plugin='pipewire' "
                                      "owner='alice'/>"));
    CHECK(info.sockets.size() == 1);
    CHECK(count_errors(info) == 1);
  }
}

TEST_CASE("Unknown attributes and elements warn and do not fail") {
  SUBCASE("an unknown attribute") {
    auto info = parse_domain_xml(
        with_sockets("<sockhook:socket plugin='pipewire' owner='alice' colour='blue'/>"));
    REQUIRE(info.sockets.size() == 1);
    auto d = only_diagnostic(info);
    CHECK_FALSE(d.error);
    CHECK(d.socket == "pipewire");
    CHECK(d.message == "ignoring unknown attribute 'colour'");
    CHECK_FALSE(info.has_fatal_error());
  }
  SUBCASE("an unknown child of <socket>") {
    auto info = parse_domain_xml(
        with_sockets("<sockhook:socket plugin='pipewire' owner='alice'><sockhook:future/>"
                     "</sockhook:socket>"));
    REQUIRE(info.sockets.size() == 1);
    auto d = only_diagnostic(info);
    CHECK_FALSE(d.error);
    CHECK(d.message == "ignoring unknown element <sockhook:future>");
  }
  SUBCASE("an unknown element in <sockets>") {
    auto info = parse_domain_xml(with_sockets(
        "<sockhook:socket plugin='pipewire' owner='alice'/><sockhook:display plugin='x'/>"));
    REQUIRE(info.sockets.size() == 1);
    auto d = only_diagnostic(info);
    CHECK_FALSE(d.error);
    CHECK(d.socket.empty());
    CHECK(d.message == "ignoring unknown element <sockhook:display> in <sockets>");
  }
  SUBCASE("an unknown top-level element in our namespace") {
    auto info = parse_domain_xml(
        domain_xml("<sockhook:options xmlns:sockhook='urn:sockhook:domain:1'/>"
                   "<sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'>"
                   "<sockhook:socket plugin='pipewire' owner='alice'/></sockhook:sockets>"));
    CHECK(info.sockets.size() == 1);
    auto d = only_diagnostic(info);
    CHECK_FALSE(d.error);
    CHECK(d.message == "ignoring unknown metadata element <sockhook:options>");
  }
  SUBCASE("wait with method proxy") {
    auto info = parse_domain_xml(
        with_sockets("<sockhook:socket plugin='pipewire' owner='alice' method='proxy' wait='3'/>"));
    CHECK(only_socket(info).wait_seconds == 3);
    auto d = only_diagnostic(info);
    CHECK_FALSE(d.error);
    CHECK(d.message == "wait has no effect with method='proxy' (the proxy connects lazily)");
  }
}

TEST_CASE("Problems are kept up to 64 and the rest counted in one line (XML alone is bounded)") {
  auto repeat = [](const std::string& what, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += what;
    return s;
  };
  SUBCASE("10,000 unknown elements: 64 warnings and one summary warning") {
    auto info = parse_domain_xml(with_sockets("<sockhook:socket plugin='pipewire' owner='alice'/>" +
                                              repeat("<sockhook:x/>", 10000)));
    CHECK(info.sockets.size() == 1);
    REQUIRE(info.diagnostics.size() == 65);
    CHECK(count_warnings(info) == 65);
    CHECK(info.diagnostics.back().message ==
          "9936 more problems in the metadata are not shown (64 are)");
    CHECK_FALSE(info.has_fatal_error());
  }
  SUBCASE("a fatal error past the bound still fails the domain") {
    // 64 warnings first, then a second <sockets> element: the summary carries the error.
    auto info = parse_domain_xml(domain_xml(
        "<a:sockets xmlns:a='urn:sockhook:domain:1'><a:socket plugin='pipewire' owner='alice'/>" +
        repeat("<a:x/>", 64) + "</a:sockets><b:sockets xmlns:b='urn:sockhook:domain:1'/>"));
    REQUIRE(info.diagnostics.size() == 65);
    CHECK(count_errors(info) == 1);
    CHECK(info.diagnostics.back().message ==
          "1 more problems in the metadata are not shown (64 are)");
    CHECK(info.has_fatal_error());
  }
  SUBCASE("exactly 64 problems: no summary") {
    auto info = parse_domain_xml(with_sockets("<sockhook:socket plugin='pipewire' owner='alice'/>" +
                                              repeat("<sockhook:x/>", 64)));
    CHECK(info.diagnostics.size() == 64);
  }
}

TEST_CASE("Two <sockets> elements are a fatal error") {
  auto info = parse_domain_xml(domain_xml(
      "<a:sockets xmlns:a='urn:sockhook:domain:1'><a:socket plugin='pipewire' owner='alice'/>"
      "</a:sockets><b:sockets xmlns:b='urn:sockhook:domain:1'><b:socket plugin='wayland' "
      "owner='alice'/></b:sockets>"));
  CHECK(info.sockets.size() == 1);
  auto d = only_diagnostic(info);
  CHECK(d.error);
  CHECK(d.socket.empty());
  CHECK(d.message == "more than one <sockets> element; all must be merged into one");
  CHECK(info.has_fatal_error());
}

TEST_CASE("More than 32 sockets are a fatal error") {
  auto many = [](int n) {
    std::string s;
    for (int i = 0; i < n; ++i)
      s += "<sockhook:socket name='s" + std::to_string(i) + "' plugin='pipewire' owner='alice'/>";
    return s;
  };
  SUBCASE("32 are fine") {
    auto info = parse_domain_xml(with_sockets(many(32)));
    CHECK(info.diagnostics.empty());
    CHECK(info.sockets.size() == 32);
  }
  SUBCASE("33 are not") {
    auto info = parse_domain_xml(with_sockets(many(33)));
    CHECK(info.sockets.size() == 32);
    auto d = only_diagnostic(info);
    CHECK(d.error);
    CHECK(d.message == "more than 32 sockets");
    CHECK(info.has_fatal_error());
  }
}

TEST_CASE("Domain names that could confuse paths or logs are refused") {
  const std::pair<std::string, std::string> cases[] = {
      {"..", "the domain name '..' is not allowed"},
      {".", "the domain name '.' is not allowed"},
      {"a/b", "the domain name contains '/'"},
      {"vm\nsockhook: ok", "the domain name contains a control character"},
      {"vm&#9;1", "the domain name contains a control character"},
      {"", "the domain has no <name>"},
      {std::string(252, 'n'),
       "the domain name is longer than 251 bytes (252); libvirt names are short"},
      {std::string(4500000, 'n'),
       "the domain name is longer than 251 bytes (4500000); libvirt names are short"},
  };
  for (const auto& [name, message] : cases) {
    CAPTURE(name);
    auto info =
        parse_domain_xml(with_sockets("<sockhook:socket plugin='pipewire' owner='alice'/>", name));
    auto d = only_diagnostic(info);
    CHECK(d.error);
    CHECK(d.socket.empty());
    CHECK(d.message == message);
    CHECK(info.has_fatal_error());
  }
  SUBCASE("a name of exactly 251 bytes is fine") {
    auto info = parse_domain_xml(
        with_sockets("<sockhook:socket plugin='pipewire' owner='alice'/>", std::string(251, 'n')));
    CHECK(info.diagnostics.empty());
  }
  SUBCASE("dots inside a name are fine") {
    auto info = parse_domain_xml(
        with_sockets("<sockhook:socket plugin='pipewire' owner='alice'/>", "win.11..x"));
    CHECK(info.diagnostics.empty());
  }
}

TEST_CASE("The domain UUID is required, validated and lower-cased") {
  const std::string one = "<sockhook:socket plugin='pipewire' owner='alice'/>";
  SUBCASE("missing") {
    auto info = parse_domain_xml(with_sockets(one, "vm1", ""));
    auto d = only_diagnostic(info);
    CHECK(d.error);
    CHECK(d.message == "the domain has no <uuid>; lends are keyed by UUID");
    CHECK(info.has_fatal_error());
  }
  for (std::string bad :
       {"3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b0", "3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b0g",
        "3f6c1a528d7e4b1f9a0c2e5d7f8a9b01", "../../../../etc/passwd",
        "3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b01/", "3f6c1a52_8d7e-4b1f-9a0c-2e5d7f8a9b01"}) {
    CAPTURE(bad);
    auto info = parse_domain_xml(with_sockets(one, "vm1", bad));
    auto d = only_diagnostic(info);
    CHECK(d.error);
    CHECK(d.message == "the domain UUID '" + bad + "' is malformed");
    CHECK(info.has_fatal_error());
  }
  SUBCASE("upper case is accepted and lower-cased") {
    auto info = parse_domain_xml(with_sockets(one, "vm1", "3F6C1A52-8D7E-4B1F-9A0C-2E5D7F8A9B01"));
    CHECK(info.diagnostics.empty());
    CHECK(info.uuid == kUuid);
  }
  SUBCASE("a domain without metadata needs neither") {
    auto info = parse_domain_xml("<domain><name>..</name></domain>");
    CHECK_FALSE(info.has_metadata);
    CHECK(info.diagnostics.empty());
  }
}

TEST_CASE("is_valid_uuid accepts only the canonical textual form") {
  check_accepts_only(
      [](const std::string& s) { return is_valid_uuid(s); },
      {"3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b01", "3F6C1A52-8D7E-4B1F-9A0C-2E5D7F8A9B01"},
      {"", "3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b011", "3f6c1a52-8d7e-4b1f-9a0c2-e5d7f8a9b01",
       "{3f6c1a52-8d7e-4b1f-9a0c-2e5d7f8a9b}"});
}

TEST_CASE("Input that is not a domain is an Error") {
  SUBCASE("not XML") {
    CHECK_THROWS_AS(parse_domain_xml("this is not xml <"), Error);
    CHECK_THROWS_AS(parse_domain_xml("<domain><name>x</name>"), Error);
  }
  SUBCASE("empty") { CHECK_THROWS_AS(parse_domain_xml(""), Error); }
  SUBCASE("the root is not <domain>") {
    CHECK_THROWS_WITH_AS(parse_domain_xml("<network><name>x</name></network>"),
                         "cannot parse domain XML: the root element is not <domain>", Error);
  }
  SUBCASE("the message says where") {
    try {
      parse_domain_xml("<domain><name>x</nam></domain>");
      FAIL("no exception");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).starts_with("cannot parse domain XML: "));
      CHECK(std::string(e.what()).find("at offset") != std::string::npos);
    }
  }
}

TEST_CASE("The DAC seclabel is read as user and group, static or dynamic") {
  struct Case {
    const char* what;
    std::string seclabels;
    std::optional<DacLabel> dac;
  };
  const Case cases[] = {
      {"static",
       "<seclabel type='static' model='dac' relabel='yes'><label>+64055:+107</label></seclabel>",
       DacLabel{"+64055", "+107", true}},
      {"dynamic, as libvirt fills it in at start",
       "<seclabel type='none' model='apparmor'/>"
       "<seclabel type='dynamic' model='dac' relabel='yes'><label>libvirt-qemu:kvm</label>"
       "<imagelabel>+64055:+107</imagelabel></seclabel>",
       DacLabel{"libvirt-qemu", "kvm", false}},
      {"a seclabel without a label, or of another model, gives none",
       "<seclabel type='dynamic' model='dac' relabel='yes'/>"
       "<seclabel type='static' model='selinux'><label>system_u:system_r:svirt_t:s0</label>"
       "</seclabel>",
       std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    auto info = parse_domain_xml(domain_xml("", "vm1", kUuid, c.seclabels));
    REQUIRE(info.dac.has_value() == c.dac.has_value());
    if (!c.dac) continue;
    CHECK(info.dac->user == c.dac->user);
    CHECK(info.dac->group == c.dac->group);
    CHECK(info.dac->is_static == c.dac->is_static);
  }
}

TEST_CASE("qemu:env entries are read by namespace URI") {
  auto info = parse_domain_xml(
      domain_xml("", "vm1", kUuid,
                 "<qemu:commandline><qemu:arg value='-no-hpet'/><qemu:env name='A' value='1'/>"
                 "<qemu:env name='PULSE_SERVER' value='unix:/x'/></qemu:commandline>"
                 "<q2:commandline xmlns:q2='http://libvirt.org/schemas/domain/qemu/1.0'>"
                 "<q2:env name='B' value=''/></q2:commandline>"
                 "<qemu:commandline xmlns:qemu='urn:not-qemu'><qemu:env name='C' value='3'/>"
                 "</qemu:commandline>"));
  using P = std::pair<std::string, std::string>;
  REQUIRE(info.qemu_env.size() == 3);
  CHECK(info.qemu_env[0] == P{"A", "1"});
  CHECK(info.qemu_env[1] == P{"PULSE_SERVER", "unix:/x"});
  CHECK(info.qemu_env[2] == P{"B", ""});
}

TEST_CASE("a qemu:env longer than 4096 bytes is an error for our domains only") {
  const std::string env = "<qemu:commandline><qemu:env name='PULSE_SERVER' value='" +
                          std::string(4096, 'v') + "'/></qemu:commandline>";
  const std::string ours =
      "<sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'><sockhook:socket "
      "plugin='pipewire' owner='alice'/></sockhook:sockets>";
  auto info = parse_domain_xml(domain_xml(ours, "vm1", kUuid, env));
  CHECK(info.qemu_env.empty());
  CHECK(only_diagnostic(info).message ==
        "<qemu:env name='PULSE_SERVER'> is longer than 4096 bytes");
  auto foreign = parse_domain_xml(domain_xml("", "vm1", kUuid, env));
  CHECK(foreign.diagnostics.empty());
}

TEST_CASE("<audio> backends keep their attributes and those of <input> and <output>") {
  auto info = parse_domain_xml(
      domain_xml("", "vm1", kUuid,
                 "<devices><audio id='1' type='pulseaudio' serverName='unix:/s'>"
                 "<input name='in' streamName='mic'/><output name='out' latency='20000'/></audio>"
                 "<audio id='2' type='jack'/></devices>"));
  using P = std::pair<std::string, std::string>;
  REQUIRE(info.audio.size() == 2);
  CHECK(info.audio[0].type == "pulseaudio");
  CHECK(info.audio[0].attributes == std::vector<P>{{"id", "1"},
                                                   {"type", "pulseaudio"},
                                                   {"serverName", "unix:/s"},
                                                   {"input.name", "in"},
                                                   {"input.streamName", "mic"},
                                                   {"output.name", "out"},
                                                   {"output.latency", "20000"}});
  CHECK(info.audio[1].type == "jack");
  CHECK(info.audio[1].attributes == std::vector<P>{{"id", "2"}, {"type", "jack"}});
}

TEST_CASE("may_have_metadata is a cheap filter on our URN") {
  CHECK(may_have_metadata(with_sockets("")));
  CHECK(may_have_metadata("<x xmlns:s='urn:sockhook:domain:2'/>"));
  CHECK_FALSE(may_have_metadata("<domain><name>plain</name></domain>"));
  CHECK_FALSE(may_have_metadata(""));
  CHECK_FALSE(may_have_metadata("<sockhook:sockets xmlns:sockhook='urn:other'/>"));
}

TEST_CASE("A domain without our metadata has no sockets and no diagnostics") {
  auto info = parse_domain_xml("<domain type='kvm'><name>plain</name><uuid>" + std::string(kUuid) +
                               "</uuid><metadata/></domain>");
  CHECK_FALSE(info.has_metadata);
  CHECK(info.sockets.empty());
  CHECK(info.diagnostics.empty());
  CHECK_FALSE(info.has_fatal_error());
}

TEST_CASE("An empty <sockets> element is metadata with nothing to lend") {
  auto info = parse_domain_xml(with_sockets(""));
  CHECK(info.has_metadata);
  CHECK(info.sockets.empty());
  CHECK(info.diagnostics.empty());
  CHECK(count_warnings(info) == 0);
}

}  // namespace
}  // namespace sockhook
