#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sockhook {

/// The namespace URI of our metadata element. Elements are matched on it, never on a prefix.
inline constexpr std::string_view kMetadataNs = "urn:sockhook:domain:1";
/// libvirt's namespace for <qemu:commandline>.
inline constexpr std::string_view kQemuNs = "http://libvirt.org/schemas/domain/qemu/1.0";

/// How a socket is lent (SPEC §4).
/// How a socket is lent. kContext: a PipeWire security context that sockhook creates on the
/// owner's server for this VM alone (lend_context.hpp); only plugins that name a context kind.
enum class Method { kAuto, kBind, kProxy, kAcl, kGroup, kContext };

/// What a method is, in one table (domain_xml.cpp).
struct MethodTraits {
  Method method;
  const char* name;  ///< "auto", "bind", ...
  const char* verb;  ///< for error messages: "cannot <verb> <source>: <why>"
  /// Release takes QEMU's access back even from a descriptor it kept (a process of sockhook's
  /// stands between them).
  bool revocable;
  /// QEMU is given a name in the domain's lend directory (not the owner's socket itself).
  bool lend_dir_target;
  /// A process running as the owner serves the lend (proxy, context holder): refresh and
  /// reconnect start it again when it died.
  bool served;
};
const MethodTraits& traits(Method m);

/// "auto", "bind", ...
std::string_view to_string(Method m);
/// Parses a method name; nullopt if unknown.
std::optional<Method> parse_method(std::string_view s);

/// One <sockhook:socket> element, validated.
struct SocketRequest {
  std::string name;    ///< unique within the domain; defaults to the plugin name
  std::string plugin;  ///< a plugin name, never a path
  std::string owner;   ///< a user name or a numeric uid, as written
  Method method = Method::kAuto;
  bool required = true;
  std::optional<int> wait_seconds;  ///< nullopt: the method's default
  /// capture="yes": a context lend lets the VM see and record the owner's sources too.
  bool capture = false;
};

/// A problem found in the metadata. An error makes that socket fail; a warning does not.
struct Diagnostic {
  std::string socket;  ///< the socket's name, or empty for the whole domain
  std::string message;
  bool error = true;
  bool required = true;  ///< for errors: whether the failing socket was required
};

/// A DAC <seclabel>: "user:group", either part may be "+N".
struct DacLabel {
  std::string user;
  std::string group;
  bool is_static = false;  ///< type='static' (present from prepare on) vs dynamic
};

/// An <audio> backend of the domain, reduced to what we check.
struct AudioBackend {
  std::string type;                                             ///< pulseaudio, jack, pipewire, ...
  std::vector<std::pair<std::string, std::string>> attributes;  ///< of <audio>, <input>, <output>
};

/// What sockhook needs from a domain's XML.
struct DomainInfo {
  std::string name;
  std::string uuid;
  /// libvirt's id of the running domain (<domain id=...>; the hook's XML has it from prepare
  /// on), -1 when the domain does not run.
  long id = -1;
  /// <resource><partition>: the cgroup partition libvirt puts QEMU under ("/machine" unless
  /// the domain names another).
  std::string partition = "/machine";
  bool has_metadata = false;
  std::vector<SocketRequest> sockets;  ///< only the valid ones
  std::vector<Diagnostic> diagnostics;
  std::optional<DacLabel> dac;
  std::vector<std::pair<std::string, std::string>> qemu_env;  ///< <qemu:env name= value=>
  std::vector<AudioBackend> audio;

  /// True if any error concerns the domain as a whole or a required socket.
  bool has_fatal_error() const;
};

/// Parses a domain's XML. Never throws for bad metadata (that becomes diagnostics); throws
/// Error only when the document is not XML or has no <domain> root.
DomainInfo parse_domain_xml(std::string_view xml);

/// Fast check used by the hook before any parsing: can this XML contain our metadata?
bool may_have_metadata(std::string_view xml);

/// True for a plugin name: lower-case letters, digits, '-' and '_' (plugins are never paths).
bool is_valid_plugin_name(std::string_view s);

/// True for a user name as useradd accepts it, or a numeric uid.
bool is_valid_owner(std::string_view s);

/// True for a canonical, lower- or upper-case RFC 4122 textual UUID.
bool is_valid_uuid(std::string_view s);

/// `s` in lower case (ASCII): lend directories, journals and policy rules are keyed by the
/// lower-case UUID.
std::string to_lower(std::string s);

}  // namespace sockhook
