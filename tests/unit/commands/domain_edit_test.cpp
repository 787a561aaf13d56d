#include "commands/domain_edit.hpp"

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <string>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "fixtures.hpp"
#include "model/domain_xml.hpp"
#include "sys/file.hpp"

namespace sockhook {
namespace {

constexpr const char* kUuid = "6f0e2c1a-5b1d-4d8e-9f43-0c1d2e3f4a5b";
constexpr unsigned long kLibvirt90 = 9000000;

Plugin shipped(const std::string& name) {
  auto path = std::string(SOCKHOOK_SOURCE_DIR) + "/plugins/" + name + ".xml";
  return parse_plugin(read_file(path, 65536), false, path);
}

const User kAlice{1000, 1000, "alice", "/home/alice"};

/// A domain as libvirt 9.0 prints it (two-space indentation, single quotes), like the one
/// FINDINGS.md starts: a sound card and the <audio type='none'> libvirt adds for it.
std::string libvirt_domain(const std::string& metadata = "", const std::string& devices_extra = "",
                           const std::string& tail = "") {
  return "<domain type='qemu'>\n"
         "  <name>shtest-pa</name>\n"
         "  <uuid>" +
         std::string(kUuid) + "</uuid>\n" + metadata +
         "  <memory unit='KiB'>65536</memory>\n"
         "  <os>\n"
         "    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>\n"
         "  </os>\n"
         "  <devices>\n"
         "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n" +
         devices_extra +
         "    <memballoon model='none'/>\n"
         "  </devices>\n" +
         tail + "</domain>\n";
}

const std::string kSoundNone =
    "    <sound model='ich9'>\n"
    "      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>\n"
    "    </sound>\n"
    "    <audio id='1' type='none'/>\n";

const std::string kOsinfo =
    "  <metadata>\n"
    "    <libosinfo:libosinfo xmlns:libosinfo=\"http://libosinfo.org/xmlns/libvirt/domain/1.0\">\n"
    "      <libosinfo:os id=\"http://debian.org/debian/12\"/>\n"
    "    </libosinfo:libosinfo>\n"
    "  </metadata>\n";

struct Fixture {
  Plugin plugin;
  AnnotateContext ctx;
  AnnotateRequest req;

  explicit Fixture(const std::string& name, unsigned long version = kLibvirt90)
      : plugin(shipped(name)) {
    ctx.plugin = &plugin;
    ctx.owner = kAlice;
    ctx.libvirt_version = version;
    req.plugin = name;
    req.owner = "alice";
  }

  AnnotateResult add(const std::string& xml) const { return annotate_xml(xml, req, ctx); }

  AnnotateResult remove(const std::string& xml) const {
    AnnotateRequest r = req;
    r.remove = true;
    AnnotateContext c;  // removing needs neither plugin nor owner
    return annotate_xml(xml, r, c);
  }
};

/// Plans `xml` as the hook would for alice's sockets, with `plugins` installed and allowed.
Plan plan_for(const std::string& xml, const std::vector<const Plugin*>& plugins) {
  static DomainInfo info;
  static PluginSet set;
  static Policy policy;
  info = parse_domain_xml(xml);
  set = PluginSet{};
  policy = Policy{};
  for (const auto* p : plugins) {
    set.plugins.emplace(p->name, *p);
    policy.allow(kUuid, "alice", p->name);
  }
  PlanInputs in;
  in.qemu = default_qemu();
  in.owners["alice"] = kAlice;
  return plan_with(in, info, set, policy);
}

/// Checks that `xml` holds each of `present` and none of `absent`.
void check_holds(const std::string& xml, std::initializer_list<std::string> present,
                 std::initializer_list<std::string> absent = {}) {
  check_accepts_only([&](const std::string& part) { return contains(xml, part); }, present, absent);
}

/// Whether one of annotate's notes says `what`.
bool notes_say(const AnnotateResult& r, const std::string& what) {
  return std::any_of(r.notes.begin(), r.notes.end(),
                     [&](const std::string& n) { return contains(n, what); });
}

/// What annotate added plans without a warning, and removing it gives back `original`.
void check_plans_clean_and_undoes(const Fixture& f, const AnnotateResult& r,
                                  const std::string& original) {
  CHECK(plan_for(r.xml, {&f.plugin}).sockets[0].warnings.empty());
  CHECK(f.remove(r.xml).xml == original);
}

TEST_CASE("Annotating for PulseAudio on libvirt 9.0 uses serverName and qemu:env for the cookie") {
  Fixture f("pulseaudio");
  auto xml = libvirt_domain("", kSoundNone);
  auto r = f.add(xml);
  CHECK(r.changed);
  CHECK(r.uuid == kUuid);
  const std::string lend = std::string("/run/sockhook/libvirt-") + kUuid;
  // The default <audio type='none'> becomes the PulseAudio backend (FINDINGS (a)).
  // PULSE_SERVER through qemu:env fails with QEMU 7.2: it must not be there.
  check_holds(r.xml,
              {"<audio id='1' type='pulseaudio' serverName='unix:" + lend + "/pulse-native'/>",
               "<qemu:env name='PULSE_COOKIE' value='" + lend + "/pulse-cookie'/>",
               "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'",
               "<sockhook:socket plugin='pulseaudio' owner='alice'>"},
              {"PULSE_SERVER"});

  SUBCASE("the hook's parser accepts the bookkeeping without a warning") {
    auto info = parse_domain_xml(r.xml);
    CHECK(info.diagnostics.empty());
    REQUIRE(info.sockets.size() == 1);
    CHECK(info.sockets[0].plugin == "pulseaudio");
  }
  SUBCASE("the planner finds every variable provided") {
    auto plan = plan_for(r.xml, {&f.plugin});
    REQUIRE(plan.sockets.size() == 1);
    CHECK(plan.errors.empty());
    for (const auto& e : plan.sockets[0].env) CHECK_MESSAGE(e.provided, e.name);
    CHECK(plan.sockets[0].warnings.empty());
  }
  SUBCASE("removing gives back the very same bytes") {
    auto back = f.remove(r.xml);
    CHECK(back.changed);
    CHECK(back.xml == xml);
    CHECK(back.removed_plugin == "pulseaudio");
    CHECK(back.removed_owner == "alice");
    CHECK_FALSE(back.allowance_still_needed);
  }
}

TEST_CASE("The round trip add then remove is byte-identical for many shapes of domain") {
  Fixture f("pulseaudio");
  std::string xml;
  SUBCASE("no sound card, no audio, no metadata") { xml = libvirt_domain(); }
  SUBCASE("another tool's metadata") { xml = libvirt_domain(kOsinfo, kSoundNone); }
  SUBCASE("an existing qemu:commandline with its own entries") {
    xml =
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
        "  <name>x</name>\n  <uuid>" +
        std::string(kUuid) +
        "</uuid>\n  <devices>\n"
        "    <sound model='ich6'/>\n"
        "    <audio id='1' type='spice'/>\n"
        "  </devices>\n"
        "  <qemu:commandline>\n"
        "    <qemu:arg value='-nodefaults'/>\n"
        "    <qemu:env name='PULSE_COOKIE' value='/somewhere/else'/>\n"
        "  </qemu:commandline>\n"
        "</domain>\n";
  }
  SUBCASE("unindented, double quotes, a leading comment and an XML declaration") {
    xml =
        "<?xml version=\"1.0\"?>\n<!-- hand written -->\n<domain "
        "type=\"kvm\"><name>x</name><uuid>" +
        std::string(kUuid) +
        "</uuid><devices><emulator>/usr/bin/qemu</emulator></devices></domain>";
  }
  SUBCASE("a pulseaudio backend with a server already set") {
    xml = libvirt_domain("",
                         "    <sound model='ich9'/>\n    <audio id='1' type='pulseaudio' "
                         "serverName='unix:/tmp/old'/>\n");
  }
  SUBCASE("an empty metadata element left by another tool") {
    xml = libvirt_domain("  <metadata>\n    <x:y xmlns:x='urn:x'/>\n  </metadata>\n");
  }
  auto added = f.add(xml);
  CHECK(added.changed);
  CHECK(parse_domain_xml(added.xml).sockets.size() == 1);
  auto back = f.remove(added.xml);
  CHECK(back.xml == xml);
}

TEST_CASE("Other namespaces in the metadata stay exactly as they were") {
  Fixture f("pulseaudio");
  auto r = f.add(libvirt_domain(kOsinfo, kSoundNone));
  // Ours is quoted as libvirt (libxml2) writes metadata, like the neighbour.
  check_holds(r.xml, {kOsinfo.substr(0, kOsinfo.find("  </metadata>")),
                      "<sockhook:sockets xmlns:sockhook=\"urn:sockhook:domain:1\">"});
}

TEST_CASE("Annotating twice is the same as annotating once") {
  for (const char* plugin : {"pulseaudio", "jack", "pipewire", "wayland"}) {
    CAPTURE(plugin);
    Fixture f(plugin);
    auto once = f.add(libvirt_domain(kOsinfo));
    auto twice = f.add(once.xml);
    CHECK_FALSE(twice.changed);
    CHECK(twice.xml == once.xml);
  }
}

TEST_CASE("An update replaces the socket's attributes and what they needed") {
  Fixture f("pulseaudio");
  auto xml = libvirt_domain("", kSoundNone);
  const auto first = f.add(xml).xml;
  const User bob{1001, 1001, "bob", "/home/bob"};
  f.req.owner = "bob";
  f.req.method = "proxy";
  f.req.required = false;
  f.ctx.owner = bob;
  auto second = f.add(first);
  CHECK(second.changed);
  check_holds(second.xml,
              {"<sockhook:socket plugin='pulseaudio' owner='bob' method='proxy' required='no'>"},
              {"owner='alice'"});
  CHECK(parse_domain_xml(second.xml).sockets.size() == 1);
  CHECK(f.remove(second.xml).xml == xml);
}

TEST_CASE("--capture writes capture='yes', which the hook reads back, and only when asked") {
  Fixture f("pipewire");
  auto xml = libvirt_domain("", kSoundNone);
  auto plain = f.add(xml);
  CHECK_FALSE(parse_domain_xml(plain.xml).sockets.at(0).capture);
  check_holds(plain.xml, {}, {"capture="});
  f.req.capture = true;
  auto captured = f.add(plain.xml);
  CHECK(captured.changed);
  CHECK(parse_domain_xml(captured.xml).sockets.at(0).capture);
  CHECK(f.remove(captured.xml).xml == xml);
}

TEST_CASE("The libvirt version decides between the native attribute and qemu:env") {
  SUBCASE("PulseAudio before libvirt 7.2 has only the environment") {
    Fixture f("pulseaudio", 7001000);
    auto r = f.add(libvirt_domain("", kSoundNone));
    // The plugin's purpose is audio: the backend is still PulseAudio.
    check_holds(r.xml,
                {"<qemu:env name='PULSE_SERVER' value='unix:/run/sockhook/",
                 "<audio id='1' type='pulseaudio'/>"},
                {"serverName"});
    CHECK(plan_for(r.xml, {&f.plugin}).sockets[0].warnings.empty());
  }
  SUBCASE("PulseAudio from libvirt 7.2 on") {
    Fixture f("pulseaudio", 7002000);
    auto r = f.add(libvirt_domain("", kSoundNone));
    CHECK(contains(r.xml, "serverName='unix:/run/sockhook/"));
  }
  SUBCASE("PipeWire on libvirt 9.0 gets PIPEWIRE_RUNTIME_DIR and no audio backend") {
    Fixture f("pipewire");
    auto xml = libvirt_domain();
    const auto added = f.add(xml).xml;
    check_holds(
        added,
        {std::string("<qemu:env name='PIPEWIRE_RUNTIME_DIR' value='/run/sockhook/libvirt-") +
         kUuid + "'/>"},
        {"<audio", "<sound"});
    CHECK(f.remove(added).xml == xml);
  }
  SUBCASE("PipeWire on libvirt 9.10 gets <audio type='pipewire' runtimeDir>") {
    Fixture f("pipewire", 9010000);
    auto xml = libvirt_domain();
    auto r = f.add(xml);
    check_holds(r.xml,
                {std::string("<audio id='1' type='pipewire' runtimeDir='/run/sockhook/libvirt-") +
                     kUuid + "'/>",
                 "<sound model='ich9'/>"},
                {"qemu:env"});
    check_plans_clean_and_undoes(f, r, xml);
  }
}

TEST_CASE("JACK gets an <audio type='jack'> backend and its environment through qemu:env") {
  Fixture f("jack");
  auto xml = libvirt_domain();
  auto r = f.add(xml);
  check_holds(r.xml, {"<sound model='ich9'/>", "<audio id='1' type='jack'/>",
                      "<qemu:env name='PIPEWIRE_RUNTIME_DIR'",
                      "<qemu:env name='LD_LIBRARY_PATH' "
                      "value='/usr/lib/x86_64-linux-gnu/pipewire-0.3/jack'/>"});
  CHECK(r.notes.size() >= 2);  // says it added the sound card and the backend
  check_plans_clean_and_undoes(f, r, xml);
}

TEST_CASE("Annotate says what the VM reaches through each socket that the server allows") {
  for (const auto* name : {"pipewire", "jack", "pulseaudio", "wayland"}) {
    CAPTURE(name);
    Fixture f(name);
    REQUIRE_FALSE(f.plugin.reach.empty());
    auto r = f.add(libvirt_domain());
    CHECK(std::count(r.notes.begin(), r.notes.end(),
                     std::string(name) + ": unrestricted: " + f.plugin.reach) == 1);
    // Said again when nothing changes, never silently; not said when taking it away.
    CHECK(notes_say(f.add(r.xml), ": unrestricted: "));
    CHECK_FALSE(notes_say(f.remove(r.xml), ": unrestricted: "));
  }
}

TEST_CASE("Annotate does not call a context lend unrestricted") {
  for (const auto* name : {"pipewire", "jack"}) {
    CAPTURE(name);
    Fixture f(name);
    f.req.method = "context";
    auto r = f.add(libvirt_domain());
    CHECK_FALSE(notes_say(r, ": unrestricted: "));
    CHECK_FALSE(notes_say(f.add(r.xml), ": unrestricted: "));
  }
}

TEST_CASE("Wayland gets QEMU's SDL display and the environment SDL needs on Wayland") {
  Fixture f("wayland");
  const std::string lend = std::string("/run/sockhook/libvirt-") + kUuid;
  const std::string sdl = "<graphics type='sdl' xauth='" + lend + "/no-xauthority'/>";
  SUBCASE("a domain without graphics gets an SDL display before its sound card") {
    auto xml =
        libvirt_domain("", kSoundNone + "    <video>\n      <model type='vga'/>\n    </video>\n");
    auto r = f.add(xml);
    // With an xauth, which virt-aa-helper needs, that names a file nobody can create.
    check_holds(r.xml, {"    " + sdl + "\n    <sound model='ich9'>",
                        "<qemu:env name='WAYLAND_DISPLAY' value='" + lend + "/wayland-0'/>",
                        "<qemu:env name='SDL_VIDEODRIVER' value='wayland'/>",
                        "<qemu:env name='SDL_RENDER_DRIVER' value='software'/>",
                        "<sockhook:added kind='graphics' graphics-type='sdl'/>"});
    CHECK(plan_for(r.xml, {&f.plugin}).sockets[0].warnings.empty());
    CHECK(f.remove(r.xml).xml == xml);
  }
  SUBCASE("an SDL display the domain has already is kept, also at removal") {
    auto xml = libvirt_domain("", "    <graphics type='sdl' display=':0'/>\n");
    auto r = f.add(xml);
    check_holds(r.xml, {"<graphics type='sdl' display=':0'/>"}, {"kind='graphics'"});
    // Without an xauth AppArmor hosts refuse to start it: annotate says so, and how to fix it.
    CHECK(notes_say(r, "has no xauth: under AppArmor libvirt refuses to start it"));
    CHECK(notes_say(r, "xauth='" + lend + "/no-xauthority'"));
    auto back = f.remove(r.xml);
    CHECK(back.xml == xml);
  }
  SUBCASE("an SDL display with an X authority is kept without a note about it") {
    auto xml = libvirt_domain("", "    <graphics type='sdl' display=':0' xauth='/x/auth'/>\n");
    auto r = f.add(xml);
    CHECK_FALSE(notes_say(r, "xauth"));
  }
  SUBCASE("a VNC display stays next to the new SDL one") {
    auto xml = libvirt_domain("", "    <graphics type='vnc' port='-1'/>\n");
    auto r = f.add(xml);
    check_holds(r.xml, {"<graphics type='vnc' port='-1'/>", sdl});
    CHECK(f.remove(r.xml).xml == xml);
  }
  SUBCASE("an optional lend: annotate says the display is not optional") {
    f.req.required = false;
    auto r = f.add(libvirt_domain());
    CHECK(notes_say(r, "does not make the display optional"));
  }
  SUBCASE("a domain without a video device: annotate says so") {
    auto r = f.add(libvirt_domain());
    CHECK(notes_say(r, "no video device"));
  }
}

TEST_CASE("Two sockets come out in either order and leave the original") {
  Fixture pulse("pulseaudio");
  Fixture wayland("wayland");
  auto xml = libvirt_domain(kOsinfo, kSoundNone);
  auto both = wayland.add(pulse.add(xml).xml).xml;
  auto info = parse_domain_xml(both);
  CHECK(info.sockets.size() == 2);
  CHECK(info.diagnostics.empty());
  auto plan = plan_for(both, {&pulse.plugin, &wayland.plugin});
  for (const auto& s : plan.sockets) CHECK(s.warnings.empty());

  SUBCASE("pulseaudio first") {
    auto one = pulse.remove(both);
    check_holds(one.xml, {"WAYLAND_DISPLAY", "<audio id='1' type='none'/>"});
    CHECK(parse_domain_xml(one.xml).sockets.size() == 1);
    CHECK(wayland.remove(one.xml).xml == xml);
  }
  SUBCASE("wayland first") {
    auto one = wayland.remove(both);
    check_holds(one.xml, {"PULSE_COOKIE"}, {"WAYLAND_DISPLAY"});
    CHECK(pulse.remove(one.xml).xml == xml);
  }
}

TEST_CASE("A removal keeps the allowance while another socket lends the same plugin") {
  Fixture f("pulseaudio");
  f.req.name = "a";
  auto xml = libvirt_domain(
      "  <metadata>\n    <sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'>\n"
      "      <sockhook:socket plugin='pulseaudio' owner='alice' name='a'/>\n"
      "      <sockhook:socket plugin='pulseaudio' owner='alice' name='b'/>\n"
      "    </sockhook:sockets>\n  </metadata>\n");
  auto r = f.remove(xml);
  CHECK(r.changed);
  CHECK(r.allowance_still_needed);
  CHECK(parse_domain_xml(r.xml).sockets.size() == 1);
}

TEST_CASE("A second socket cannot claim what another socket already set") {
  // A second PulseAudio socket would set serverName on the same backend; a second Wayland
  // socket, WAYLAND_DISPLAY: both refused.
  for (const char* plugin : {"pulseaudio", "wayland"}) {
    CAPTURE(plugin);
    Fixture first(plugin), second(plugin);
    second.req.name = "second";
    CHECK_THROWS_AS(second.add(first.add(libvirt_domain()).xml), Error);
  }
}

TEST_CASE("Removing what is not there changes nothing") {
  Fixture f("pulseaudio");
  auto xml = libvirt_domain(kOsinfo);
  auto r = f.remove(xml);
  CHECK_FALSE(r.changed);
  CHECK(r.xml == xml);
  CHECK(r.removed_plugin.empty());
}

TEST_CASE("Annotate refuses what the hook would refuse") {
  Fixture f("pulseaudio");
  SUBCASE("a domain without a UUID") {
    CHECK_THROWS_AS(f.add("<domain type='kvm'><name>x</name><devices/></domain>"), Error);
  }
  SUBCASE("root as the owner") {
    f.ctx.owner = User{0, 0, "root", "/root"};
    f.req.owner = "root";
    CHECK_THROWS_AS(f.add(libvirt_domain()), Error);
  }
  SUBCASE("an invalid socket name") {
    f.req.name = "has space";
    CHECK_THROWS_AS(f.add(libvirt_domain()), Error);
  }
  SUBCASE("not a domain") { CHECK_THROWS_AS(f.add("<network/>"), Error); }
}

TEST_CASE("Metadata with another prefix for our namespace is found by its URI") {
  Fixture f("wayland");
  auto xml = libvirt_domain(
      "  <metadata>\n    <sh:sockets xmlns:sh='urn:sockhook:domain:1'>\n"
      "      <sh:socket plugin='pulseaudio' owner='alice'/>\n    </sh:sockets>\n  </metadata>\n");
  auto r = f.add(xml);
  CHECK(contains(r.xml, "<sh:socket plugin='wayland' owner='alice'>"));
  CHECK(parse_domain_xml(r.xml).sockets.size() == 2);
  CHECK(f.remove(r.xml).xml == xml);
}

TEST_CASE("Every shipped example survives adding and removing every shipped plugin") {
  namespace fs = std::filesystem;
  int n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(SOCKHOOK_SOURCE_DIR) / "xml-examples")) {
    if (e.path().extension() != ".xml") continue;
    auto xml = read_file(e.path().string(), 1 << 20);
    for (const char* plugin : {"pulseaudio", "jack", "pipewire", "wayland"}) {
      CAPTURE(e.path().filename().string());
      CAPTURE(plugin);
      Fixture f(plugin);
      f.req.name = "extra";
      AnnotateResult added;
      try {
        added = f.add(xml);
      } catch (const Error& err) {
        // Only a real conflict may refuse: another socket of the example sets the same thing.
        CHECK_MESSAGE(std::string(err.what()).find("sets it already") != std::string::npos,
                      err.what());
        continue;
      }
      CHECK(added.changed);
      CHECK(f.add(added.xml).xml == added.xml);
      CHECK(f.remove(added.xml).xml == xml);
      ++n;
    }
  }
  CHECK(n > 8);
}

}  // namespace
}  // namespace sockhook
