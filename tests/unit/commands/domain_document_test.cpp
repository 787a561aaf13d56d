#include "commands/domain_document.hpp"

#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "fixtures.hpp"
#include "sys/file.hpp"

namespace sockhook {
namespace {

/// A small domain as libvirt prints it: two-space indentation, single quotes.
const std::string kDomain =
    "<domain type='qemu'>\n"
    "  <name>doc</name>\n"
    "  <uuid>6f0e2c1a-5b1d-4d8e-9f43-0c1d2e3f4a5b</uuid>\n"
    "  <devices>\n"
    "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
    "    <memballoon model='none'/>\n"
    "  </devices>\n"
    "</domain>\n";

std::string saved(const std::string& xml) { return DomainDocument(xml).save(); }

TEST_CASE("A document saves as its input, byte for byte, when nothing changed") {
  namespace fs = std::filesystem;
  int n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(SOCKHOOK_SOURCE_DIR) / "xml-examples")) {
    if (e.path().extension() != ".xml") continue;
    CAPTURE(e.path().filename().string());
    auto xml = read_file(e.path().string(), 1 << 20);
    CHECK(saved(xml) == xml);
    ++n;
  }
  CHECK(n > 8);
  // What pugixml alone would not give back: the text around the root, and metadata quoted
  // unlike the rest (libvirt keeps metadata with libxml2's ").
  for (const std::string& xml : {
           "<!-- by hand -->\n" + kDomain + "\n\n",
           std::string("<domain type='kvm'><metadata><x:y xmlns:x=\"urn:x\" a=\"1\"/>"
                       "<z:w xmlns:z='urn:z'/></metadata><name>mixed</name></domain>"),
       }) {
    CAPTURE(xml);
    CHECK(saved(xml) == xml);
  }
}

TEST_CASE(
    "Inserted elements take their neighbour's indentation, and removing them gives back the "
    "bytes") {
  DomainDocument doc(kDomain);
  auto devices = doc.devices();
  auto emulator = devices.child("emulator");
  auto before = insert_before(devices, emulator, "graphics");
  auto after = insert_after(devices, emulator, "sound");
  auto appended = append_element(devices, "audio");
  auto inner = append_element(appended, "output");  // an element with no children yet
  CHECK(doc.save() ==
        "<domain type='qemu'>\n"
        "  <name>doc</name>\n"
        "  <uuid>6f0e2c1a-5b1d-4d8e-9f43-0c1d2e3f4a5b</uuid>\n"
        "  <devices>\n"
        "    <graphics/>\n"
        "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
        "    <sound/>\n"
        "    <memballoon model='none'/>\n"
        "    <audio>\n"
        "      <output/>\n"
        "    </audio>\n"
        "  </devices>\n"
        "</domain>\n");
  CHECK(has_elements(appended));
  remove_element(inner);
  CHECK_FALSE(has_elements(appended));
  for (auto el : {appended, after, before}) remove_element(el);
  // The empty <audio>'s own line break stayed with it; the rest is the input again.
  CHECK(doc.save() == kDomain);
}

TEST_CASE("Our <sockets> element is made where libvirt puts metadata, and records go in it") {
  DomainDocument doc(kDomain);
  CHECK_FALSE(doc.sockets());
  auto sockets = doc.ensure_sockets();
  CHECK(sockets == doc.ensure_sockets());  // made once
  auto socket = append_element(sockets, (doc.ns_prefix() + ":socket").c_str());
  socket.append_attribute("plugin") = "pulseaudio";
  auto other = append_element(sockets, (doc.ns_prefix() + ":socket").c_str());
  other.append_attribute("plugin") = "pipewire";
  other.append_attribute("name") = "pw";
  doc.record(socket, "qemu-env").append_attribute("name") = "PULSE_COOKIE";
  auto text = doc.save();
  CHECK(contains(text,
                 "  <uuid>6f0e2c1a-5b1d-4d8e-9f43-0c1d2e3f4a5b</uuid>\n"
                 "  <metadata>\n"
                 "    <sockhook:sockets xmlns:sockhook='urn:sockhook:domain:1'>\n"
                 "      <sockhook:added kind='metadata'/>\n"
                 "      <sockhook:socket plugin='pulseaudio'>\n"
                 "        <sockhook:added kind='qemu-env' name='PULSE_COOKIE'/>\n"
                 "      </sockhook:socket>\n"
                 "      <sockhook:socket plugin='pipewire' name='pw'/>\n"
                 "    </sockhook:sockets>\n"
                 "  </metadata>\n"
                 "  <devices>\n"));
  // Read back from the text, as the next annotate finds it.
  DomainDocument again(text);
  CHECK(again.socket_elements().size() == 2);
  CHECK(DomainDocument::effective_name(again.find_socket("pw")) == "pw");
  CHECK(again.find_socket("pulseaudio").attribute("plugin").value() == std::string("pulseaudio"));
  CHECK_FALSE(again.find_socket("pipewire"));  // named pw
  CHECK(DomainDocument::records(again.sockets(), "metadata").size() == 1);
  CHECK(DomainDocument::records(again.find_socket("pulseaudio"), "qemu-env").size() == 1);
  CHECK(DomainDocument::records(again.find_socket("pulseaudio"), "audio").empty());
}

TEST_CASE("The QEMU namespace is found by its URI, whatever its prefix") {
  DomainDocument plain(kDomain);
  CHECK(plain.qemu_prefix().empty());
  CHECK_FALSE(plain.commandline());
  DomainDocument doc(
      "<domain type='kvm' xmlns:q='http://libvirt.org/schemas/domain/qemu/1.0'><name>q</name>"
      "<q:commandline><q:env name='A' value='1'/></q:commandline></domain>");
  CHECK(doc.qemu_prefix() == "q");
  CHECK(doc.commandline());
  CHECK(doc.uses_prefix("q"));
  remove_element(doc.commandline());
  CHECK_FALSE(doc.uses_prefix("q"));
}

TEST_CASE("A document that is not one domain is refused, saying why") {
  auto refusal = [](const std::string& xml) {
    try {
      DomainDocument doc(xml);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(contains(refusal("<domain><name>x</name>"), "cannot parse domain XML"));
  CHECK(contains(refusal("<network><name>x</name></network>"), "the root element is not <domain>"));
  CHECK(contains(refusal("<domain><metadata>"
                         "<a:sockets xmlns:a='urn:sockhook:domain:1'/>"
                         "<b:sockets xmlns:b='urn:sockhook:domain:1'/>"
                         "</metadata></domain>"),
                 "more than one <sockets> element"));
  CHECK(refusal(kDomain) == "accepted");
}

}  // namespace
}  // namespace sockhook
