#include "model/domain_xml.hpp"

#include <algorithm>
#include <charconv>
#include <set>

#include <pugixml.hpp>

#include "base/error.hpp"
#include "model/xml_ns.hpp"

namespace sockhook {
namespace {

constexpr int kMaxWaitSeconds = 120;
constexpr std::size_t kMaxSockets = 32;
// Bounds of every field that can reach the journal or an error line (issue 9): a journal
// must always load again, and one line must stay one readable line.
// libvirt keeps a domain's XML as NAME.xml (config and status): NAME_MAX - 4.
constexpr std::size_t kMaxDomainNameBytes = 251;
constexpr std::size_t kMaxPluginNameBytes = 64;
constexpr std::size_t kMaxSocketNameBytes = 64;
constexpr std::size_t kMaxOwnerBytes = 32;  // useradd's limit
// Compared with the values a lend needs (paths): PATH_MAX.
constexpr std::size_t kMaxEnvBytes = 4096;
// What an error line quotes of a value at most.
constexpr std::size_t kMaxQuotedBytes = 64;
// The problems kept of one domain's XML; the rest are counted in one summary (issue 22: a
// million unknown elements made two million log lines per start). Enough for one problem on
// each of kMaxSockets sockets and the domain's own.
constexpr std::size_t kMaxDiagnostics = 64;

/// Keeps the first kMaxDiagnostics problems and counts the rest, so that what the XML alone
/// makes the hook keep and log is bounded whatever its size.
class Diagnostics {
 public:
  explicit Diagnostics(std::vector<Diagnostic>& out) : out_(out) {}

  void add(Diagnostic d) {
    if (out_.size() < kMaxDiagnostics) {
      out_.push_back(std::move(d));
      return;
    }
    ++omitted_;
    omitted_fatal_ |= d.error && d.required;
  }

  /// The one line for what was left out: an error if anything left out was fatal, so that
  /// leaving a problem out never lets a start pass that it would have failed.
  void summarize() {
    if (omitted_ == 0) return;
    out_.push_back({"",
                    std::to_string(omitted_) + " more problems in the metadata are not shown (" +
                        std::to_string(kMaxDiagnostics) + " are)",
                    omitted_fatal_, omitted_fatal_});
  }

 private:
  std::vector<Diagnostic>& out_;
  std::size_t omitted_ = 0;
  bool omitted_fatal_ = false;
};

/// `v` as an error line quotes it: whole when short, else its start and its length.
std::string quoted(std::string_view v) {
  if (v.size() <= kMaxQuotedBytes) return std::string(v);
  return std::string(v.substr(0, kMaxQuotedBytes)) + "... (" + std::to_string(v.size()) + " bytes)";
}

bool all_of_chars(std::string_view s, bool (*ok)(char)) {
  return std::all_of(s.begin(), s.end(), ok);
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool plugin_name_ok(std::string_view s) {
  return !s.empty() && s.size() <= kMaxPluginNameBytes && s[0] != '-' && s[0] != '_' &&
         all_of_chars(s, [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
         });
}

bool owner_ok(std::string_view s) {
  if (s.empty() || s.size() > kMaxOwnerBytes) return false;
  if (all_of_chars(s, is_digit)) return true;
  if (s[0] == '-' || s[0] == '.' || is_digit(s[0])) return false;
  auto body = s.back() == '$' ? s.substr(0, s.size() - 1) : s;
  return all_of_chars(body, is_name_char);
}

bool valid_socket_name(std::string_view s) {
  return !s.empty() && s.size() <= kMaxSocketNameBytes && s[0] != '.' && s[0] != '-' &&
         all_of_chars(s, is_name_char);
}

/// The name appears in logs and error lines; refuse what could forge or confuse them.
std::optional<std::string> domain_name_problem(std::string_view name) {
  if (name.empty()) return "the domain has no <name>";
  if (name.size() > kMaxDomainNameBytes)
    return "the domain name is longer than " + std::to_string(kMaxDomainNameBytes) + " bytes (" +
           std::to_string(name.size()) + "); libvirt names are short";
  if (name == "." || name == "..")
    return "the domain name '" + std::string(name) + "' is not allowed";
  for (char c : name) {
    if (c == '/') return "the domain name contains '/'";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return "the domain name contains a control character";
  }
  return std::nullopt;
}

/// Collects diagnostics for one <socket> element while validating it.
class SocketParser {
 public:
  SocketParser(DomainInfo& info, Diagnostics& diagnostics, std::set<std::string>& names)
      : info_(info), diagnostics_(diagnostics), names_(names) {}

  void parse(const pugi::xml_node& el, std::size_t index) {
    SocketRequest req;
    // `required` first, so that every later error knows whether it is fatal.
    std::string required = el.attribute("required").as_string("yes");
    if (required == "no") {
      req.required = false;
    } else if (required != "yes") {
      error(label(el, index), "required='" + quoted(required) + "' must be 'yes' or 'no'");
    }
    req_required_ = req.required;

    req.plugin = el.attribute("plugin").as_string();
    req.name = el.attribute("name") ? el.attribute("name").as_string() : req.plugin;
    auto who = label(el, index);
    if (!el.attribute("plugin")) {
      error(who, "missing attribute 'plugin'");
    } else if (req.plugin.size() > kMaxPluginNameBytes) {
      error(who, "plugin='" + quoted(req.plugin) + "' is longer than " +
                     std::to_string(kMaxPluginNameBytes) + " bytes");
    } else if (!plugin_name_ok(req.plugin)) {
      error(who, "plugin='" + quoted(req.plugin) +
                     "' is not a plugin name (plugins are named, never paths)");
    }
    if (!el.attribute("owner")) {
      error(who, "missing attribute 'owner'");
    } else {
      req.owner = el.attribute("owner").as_string();
      if (req.owner.size() > kMaxOwnerBytes)
        error(who, "owner='" + quoted(req.owner) + "' is longer than " +
                       std::to_string(kMaxOwnerBytes) + " bytes");
      else if (!owner_ok(req.owner))
        error(who, "owner='" + quoted(req.owner) + "' is not a user name or uid");
    }
    if (auto m = el.attribute("method")) {
      if (auto parsed = parse_method(m.as_string())) {
        req.method = *parsed;
      } else {
        error(who, "method='" + quoted(m.as_string()) +
                       "' is not one of auto, bind, proxy, acl, group, context");
      }
    }
    if (auto w = el.attribute("wait")) {
      std::string_view v = w.as_string();
      int seconds = -1;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
      if (ec != std::errc() || end != v.data() + v.size() || seconds < 0 ||
          seconds > kMaxWaitSeconds) {
        error(who, "wait='" + quoted(v) + "' must be a whole number of seconds from 0 to " +
                       std::to_string(kMaxWaitSeconds));
      } else {
        req.wait_seconds = seconds;
        if (req.method == Method::kProxy)
          warn(who, "wait has no effect with method='proxy' (the proxy connects lazily)");
      }
    }
    if (auto c = el.attribute("capture")) {
      std::string_view v = c.as_string();
      if (v == "yes" || v == "no")
        req.capture = v == "yes";
      else
        error(who, "capture='" + quoted(v) + "' must be yes or no");
    }
    if (el.attribute("name") && req.name.size() > kMaxSocketNameBytes) {
      error(who, "name='" + quoted(req.name) + "' is longer than " +
                     std::to_string(kMaxSocketNameBytes) + " bytes");
    } else if (el.attribute("name") && !valid_socket_name(req.name)) {
      error(who, "name='" + quoted(req.name) + "' may hold only letters, digits, '.', '_' and '-'");
    } else if (!req.name.empty() && !names_.insert(req.name).second) {
      error(who, "name '" + quoted(req.name) + "' is used by another socket of this domain" +
                     (el.attribute("name") ? "" : " (set name= to tell them apart)"));
    }
    for (auto a : el.attributes()) {
      std::string_view n = a.name();
      if (n == "plugin" || n == "owner" || n == "method" || n == "required" || n == "wait" ||
          n == "name" || n == "capture" || n.starts_with("xmlns"))
        continue;
      warn(who, "ignoring unknown attribute '" + quoted(n) + "'");
    }
    for (auto child : el.children()) {
      // <sockhook:added> records what `annotate` added, so that --remove can undo it.
      if (child.type() == pugi::node_element && !is_element(child, kMetadataNs, "added"))
        warn(who, "ignoring unknown element <" + quoted(child.name()) + ">");
    }
    if (!failed_) info_.sockets.push_back(std::move(req));
  }

 private:
  /// A socket is named by its name= or plugin= when those are usable, else by position.
  static std::string label(const pugi::xml_node& el, std::size_t index) {
    for (const char* attr : {"name", "plugin"}) {
      std::string v = el.attribute(attr).as_string();
      if (valid_socket_name(v)) return v;
    }
    return "socket #" + std::to_string(index + 1);
  }
  void error(const std::string& who, std::string msg) {
    failed_ = true;
    diagnostics_.add({who, std::move(msg), true, req_required_});
  }
  void warn(const std::string& who, std::string msg) {
    diagnostics_.add({who, std::move(msg), false, false});
  }

  DomainInfo& info_;
  Diagnostics& diagnostics_;
  std::set<std::string>& names_;
  bool failed_ = false;
  bool req_required_ = true;
};

void parse_metadata(const pugi::xml_node& metadata, DomainInfo& info, Diagnostics& diagnostics) {
  bool seen = false;
  for (auto el : metadata.children()) {
    if (el.type() != pugi::node_element) continue;
    std::string ns = namespace_of(el);
    if (ns != kMetadataNs) {
      // Someone meant sockhook but wrote another namespace: that must not pass silently.
      if (ns.starts_with("urn:sockhook:") || std::string_view(el.name()).starts_with("sockhook:"))
        diagnostics.add({"",
                         "metadata <" + quoted(el.name()) + "> uses namespace '" + quoted(ns) +
                             "'; this sockhook understands only '" + std::string(kMetadataNs) + "'",
                         true, true});
      continue;
    }
    info.has_metadata = true;
    if (local_name(el.name()) != "sockets") {
      diagnostics.add(
          {"", "ignoring unknown metadata element <" + quoted(el.name()) + ">", false, false});
      continue;
    }
    if (seen) {
      diagnostics.add(
          {"", "more than one <sockets> element; all must be merged into one", true, true});
      continue;
    }
    seen = true;
    std::set<std::string> names;
    std::size_t index = 0;
    for (auto child : el.children()) {
      if (child.type() != pugi::node_element) continue;
      if (is_element(child, kMetadataNs, "added")) continue;  // annotate's bookkeeping
      if (!is_element(child, kMetadataNs, "socket")) {
        diagnostics.add({"", "ignoring unknown element <" + quoted(child.name()) + "> in <sockets>",
                         false, false});
        continue;
      }
      if (index == kMaxSockets) {
        diagnostics.add({"", "more than " + std::to_string(kMaxSockets) + " sockets", true, true});
        break;
      }
      SocketParser(info, diagnostics, names).parse(child, index++);
    }
  }
}

void parse_qemu_side(const pugi::xml_node& domain, DomainInfo& info, Diagnostics& diagnostics) {
  for (auto seclabel : domain.children("seclabel")) {
    if (std::string_view(seclabel.attribute("model").as_string()) != "dac") continue;
    std::string_view label = seclabel.child_value("label");
    auto colon = label.find(':');
    if (label.empty() || colon == std::string_view::npos) continue;
    info.dac = DacLabel{std::string(label.substr(0, colon)), std::string(label.substr(colon + 1)),
                        std::string_view(seclabel.attribute("type").as_string()) == "static"};
  }
  for (auto el : domain.children()) {
    if (!is_element(el, kQemuNs, "commandline")) continue;
    for (auto env : el.children()) {
      if (!is_element(env, kQemuNs, "env")) continue;
      std::string_view name = env.attribute("name").as_string();
      std::string_view value = env.attribute("value").as_string();
      // Only compared with what a lend needs, and quoted in warnings: bound them.
      if (name.size() + value.size() > kMaxEnvBytes) {
        if (info.has_metadata)  // someone else's domain: not ours to judge
          diagnostics.add({"",
                           "<qemu:env name='" + quoted(name) + "'> is longer than " +
                               std::to_string(kMaxEnvBytes) + " bytes",
                           true, true});
        continue;
      }
      info.qemu_env.emplace_back(name, value);
    }
  }
  for (auto audio : domain.child("devices").children("audio")) {
    AudioBackend backend{audio.attribute("type").as_string(), {}};
    for (auto a : audio.attributes()) backend.attributes.emplace_back(a.name(), a.value());
    for (auto dir : audio.children()) {
      if (dir.type() != pugi::node_element) continue;
      for (auto a : dir.attributes())
        backend.attributes.emplace_back(std::string(dir.name()) + "." + a.name(), a.value());
    }
    info.audio.push_back(std::move(backend));
  }
}

}  // namespace

namespace {

// clang-format off
/// Every method and what it is: the one table of them.
constexpr MethodTraits kMethodTraits[] = {
  //  method           name       verb (in "cannot <verb> <source>")  revocable lend-dir served
    {Method::kAuto,    "auto",    "lend",                             false,    false,   false},
    {Method::kBind,    "bind",    "bind-mount",                       false,    true,    false},
    {Method::kProxy,   "proxy",   "proxy",                            true,     true,    true},
    {Method::kAcl,     "acl",     "grant access to",                  false,    false,   false},
    {Method::kGroup,   "group",   "change the group of",              false,    false,   false},
    {Method::kContext, "context", "lend",                             true,     true,    true},
};
// clang-format on

}  // namespace

const MethodTraits& traits(Method m) {
  for (const auto& t : kMethodTraits)
    if (t.method == m) return t;
  return kMethodTraits[0];
}

std::string_view to_string(Method m) { return traits(m).name; }

std::optional<Method> parse_method(std::string_view s) {
  for (const auto& t : kMethodTraits)
    if (t.name == s) return t.method;
  return std::nullopt;
}

bool DomainInfo::has_fatal_error() const {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return d.error && d.required; });
}

bool is_valid_plugin_name(std::string_view s) { return plugin_name_ok(s); }

bool is_valid_owner(std::string_view s) { return owner_ok(s); }

bool is_valid_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (dash ? c != '-' : !hex) return false;
  }
  return true;
}

bool may_have_metadata(std::string_view xml) {
  return xml.find("urn:sockhook:") != std::string_view::npos;
}

DomainInfo parse_domain_xml(std::string_view xml) {
  pugi::xml_document doc;
  // No entity expansion beyond the XML built-ins; pugixml never fetches external DTDs.
  auto result = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!result)
    throw Error("cannot parse domain XML: " + std::string(result.description()) + " at offset " +
                std::to_string(result.offset));
  auto domain = doc.child("domain");
  if (!domain) throw Error("cannot parse domain XML: the root element is not <domain>");

  DomainInfo info;
  info.name = domain.child_value("name");
  info.uuid = domain.child_value("uuid");
  // libvirt writes id='N' for a running domain (and for the one it is starting) and nothing
  // otherwise; anything else is not an id it would have given.
  if (auto id = domain.attribute("id")) {
    std::string_view text = id.as_string();
    long value = -1;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!text.empty() && ec == std::errc() && end == text.data() + text.size() && value >= 0)
      info.id = value;
  }
  if (std::string partition = domain.child("resource").child_value("partition"); !partition.empty())
    info.partition = partition;
  Diagnostics diagnostics(info.diagnostics);
  parse_metadata(domain.child("metadata"), info, diagnostics);
  parse_qemu_side(domain, info, diagnostics);
  if (info.has_metadata) {
    if (auto problem = domain_name_problem(info.name)) diagnostics.add({"", *problem, true, true});
    // The name prefixes every line about this domain: keep those lines short.
    if (info.name.size() > kMaxDomainNameBytes) info.name = quoted(info.name);
    if (info.uuid.empty()) {
      diagnostics.add({"", "the domain has no <uuid>; lends are keyed by UUID", true, true});
    } else if (!is_valid_uuid(info.uuid)) {
      diagnostics.add({"", "the domain UUID '" + quoted(info.uuid) + "' is malformed", true, true});
    }
  }
  diagnostics.summarize();
  info.uuid = to_lower(info.uuid);
  return info;
}

std::string to_lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace sockhook
