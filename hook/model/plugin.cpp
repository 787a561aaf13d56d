#include "model/plugin.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include <pugixml.hpp>

#include "base/error.hpp"
#include "base/split.hpp"
#include "sys/fd.hpp"
#include "sys/file.hpp"
#include "sys/trust.hpp"

namespace sockhook {
namespace {

constexpr std::size_t kMaxPluginBytes = 64 * 1024;

bool is_env_name(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

/// A relative path that stays below its base: no "..", no empty or "." components.
bool is_clean_relative(std::string_view p) {
  if (p.empty() || p.front() == '/' || p.back() == '/') return false;
  auto parts = split(p, '/');
  return std::all_of(parts.begin(), parts.end(), is_plain_file_name);
}

bool is_clean_absolute(std::string_view p) {
  return p.size() > 1 && p.front() == '/' && is_clean_relative(p.substr(1));
}

std::string require_attr(const pugi::xml_node& el, const char* name) {
  auto a = el.attribute(name);
  if (!a)
    throw Error("<" + std::string(el.name()) + "> lacks attribute '" + std::string(name) + "'");
  return a.value();
}

void check_target(const std::string& target, std::set<std::string>& targets) {
  if (!is_plain_file_name(target)) throw Error("target '" + target + "' is not a plain file name");
  if (!targets.insert(target).second) throw Error("target '" + target + "' is used twice");
}

/// `text` with each run of whitespace (line breaks of the XML file too) made one space.
std::string one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (space) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) {
      out += c;
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

bool is_plain_file_name(std::string_view s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 255) return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

std::string expand(std::string_view text, const Variables& vars) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '{') {
      out += text[i++];
      continue;
    }
    auto close = text.find('}', i);
    if (close == std::string_view::npos)
      throw Error("unterminated variable in '" + std::string(text) + "'");
    auto name = text.substr(i + 1, close - i - 1);
    const std::pair<std::string_view, const std::string*> known[] = {
        {"runtime_dir", &vars.runtime_dir},
        {"home", &vars.home},
        {"user", &vars.user},
        {"uid", &vars.uid},
        {"lend_dir", &vars.lend_dir},
        {"target", &vars.target},
        {"files_dir", &vars.files_dir}};
    auto found = std::find_if(std::begin(known), std::end(known),
                              [&](const auto& k) { return k.first == name; });
    if (found == std::end(known))
      throw Error("unknown variable {" + std::string(name) + "} in '" + std::string(text) + "'");
    out += *found->second;
    i = close + 1;
  }
  return out;
}

Plugin parse_plugin(std::string_view xml, bool admin, const std::string& file) {
  pugi::xml_document doc;
  auto result = doc.load_buffer(xml.data(), xml.size());
  if (!result) throw Error("not valid XML: " + std::string(result.description()));
  auto root = doc.child("plugin");
  if (!root) throw Error("the root element is not <plugin>");

  Plugin p;
  p.file = file;
  p.admin = admin;
  p.name = require_attr(root, "name");
  p.summary = root.attribute("summary").as_string();
  p.audio_backend = root.attribute("audio").as_string();
  p.graphics = root.attribute("graphics").as_string();
  p.context = root.attribute("context").as_string();
  if (!p.context.empty() && p.context != "pipewire" && p.context != "wayland")
    throw Error("context='" + p.context + "' is not a kind sockhook knows (pipewire, wayland)");
  if (!std::all_of(p.graphics.begin(), p.graphics.end(),
                   [](char c) { return c >= 'a' && c <= 'z'; }))
    throw Error("graphics='" + p.graphics + "' is not a libvirt graphics type (sdl, vnc, ...)");
  std::set<std::string> targets;
  // Only check that variables are known; the values come at plan time.
  Variables probe{"r", "h", "u", "0", "l", "t", "f"};
  bool have_socket = false;
  for (auto el : root.children()) {
    if (el.type() != pugi::node_element) continue;
    std::string_view kind = el.name();
    if (kind == "socket") {
      if (have_socket) throw Error("more than one <socket>");
      have_socket = true;
      p.socket_path = require_attr(el, "path");
      p.socket_target = require_attr(el, "target");
      p.socket_paths = {p.socket_path};
      for (auto c : el.children()) {
        if (c.type() != pugi::node_element) continue;
        if (std::string_view(c.name()) != "candidate")
          throw Error("unknown element <" + std::string(c.name()) + "> in <socket>");
        auto path = require_attr(c, "path");
        if (std::find(p.socket_paths.begin(), p.socket_paths.end(), path) != p.socket_paths.end())
          throw Error("socket path '" + path + "' is listed twice");
        p.socket_paths.push_back(path);
      }
      for (const auto& path : p.socket_paths) {
        bool absolute = !path.empty() && path.front() == '/';
        if (absolute && !admin)
          throw Error("socket path '" + path +
                      "' is absolute; only plugins in /etc/sockhook/plugins may use absolute "
                      "paths");
        if (absolute ? !is_clean_absolute(path) : !is_clean_relative(path))
          throw Error("socket path '" + path + "' is not a clean path");
      }
      check_target(p.socket_target, targets);
    } else if (kind == "file" && el.attribute("content")) {
      // A file whose content the plugin gives: written by root, nothing of the owner's read.
      if (el.attribute("path")) throw Error("<file> has both path and content");
      PluginFile f{"", require_attr(el, "target"), false, el.attribute("content").value()};
      if (f.content->size() > 64 * 1024) throw Error("<file> content is larger than 64 KiB");
      check_target(f.target, targets);
      p.files.push_back(std::move(f));
    } else if (kind == "file") {
      PluginFile f{require_attr(el, "path"),
                   require_attr(el, "target"),
                   std::string_view(el.attribute("optional").as_string("no")) == "yes",
                   {}};
      std::string_view path = f.path;
      bool ok = path.starts_with("~/")  ? is_clean_relative(path.substr(2))
                : path.starts_with("/") ? admin && is_clean_absolute(path)
                                        : is_clean_relative(path);
      if (!ok) throw Error("file path '" + f.path + "' is not allowed here");
      check_target(f.target, targets);
      p.files.push_back(std::move(f));
    } else if (kind == "env") {
      PluginEnv e{require_attr(el, "name"), require_attr(el, "value")};
      if (!is_env_name(e.name)) throw Error("'" + e.name + "' is not an environment variable name");
      expand(e.value, probe);
      p.env.push_back(std::move(e));
    } else if (kind == "audio") {
      PluginAudioAttr a{require_attr(el, "type"), require_attr(el, "attribute"),
                        require_attr(el, "value"), el.attribute("covers").as_string(),
                        el.attribute("min-libvirt").as_ullong(0)};
      expand(a.value, probe);
      p.audio.push_back(std::move(a));
    } else if (kind == "reach") {
      if (!p.reach.empty()) throw Error("more than one <reach>");
      p.reach = one_line(el.text().get());
      if (p.reach.empty()) throw Error("<reach> is empty");
    } else {
      throw Error("unknown element <" + std::string(kind) + ">");
    }
  }
  if (!have_socket) throw Error("no <socket> element");
  return p;
}

const Plugin* PluginSet::find(const std::string& name) const {
  auto it = plugins.find(name);
  return it != plugins.end() ? &it->second : nullptr;
}

std::string PluginSet::why_missing(const std::string& name) const {
  auto r = refused.find(name);
  return r != refused.end() ? r->second : "no plugin named '" + name + "' is installed";
}

std::vector<PluginDir> default_plugin_dirs() {
  return {{SOCKHOOK_SYSCONF_DIR "/plugins", true}, {SOCKHOOK_PLUGIN_DIR, false}};
}

PluginSet load_plugins(const std::vector<PluginDir>& dirs, const std::vector<uid_t>& trusted) {
  PluginSet set;
  for (const auto& [dir, admin] : dirs) {
    Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!dfd) {
      if (errno != ENOENT)
        set.problems.push_back("cannot open " + dir + ": " + std::strerror(errno));
      continue;
    }
    struct stat dst {};
    if (::fstat(dfd.get(), &dst) != 0) continue;
    if (auto problem = trust_problem(dst, trusted)) {
      set.problems.push_back("ignoring plugin directory " + dir + ": " + *problem);
      continue;
    }
    for (const auto& entry : list_directory(dfd)) {
      if (!entry.ends_with(".xml") || entry.size() <= 4) continue;
      std::string stem = entry.substr(0, entry.size() - 4);
      // An earlier directory already decided about this name (override by name).
      if (set.plugins.count(stem) || set.refused.count(stem)) continue;
      std::string path = dir + "/" + entry;
      const bool from_admin = admin;  // a structured binding is not captured before clang 16
      auto loaded = attempt([&] {
        // O_NOFOLLOW + fstat: the check applies to the very file that is read.
        Fd fd(::openat(dfd.get(), entry.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
        if (!fd) throw_errno("cannot open");
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) throw_errno("cannot stat");
        if (!S_ISREG(st.st_mode)) throw Error("it is not a regular file");
        if (auto problem = trust_problem(st, trusted)) throw Error(*problem);
        auto text = read_all(fd, kMaxPluginBytes);
        auto plugin = parse_plugin(text, from_admin, path);
        if (plugin.name != stem)
          throw Error("it names itself '" + plugin.name + "'; the file must be " + plugin.name +
                      ".xml");
        set.plugins.emplace(stem, std::move(plugin));
      });
      if (!loaded)
        set.refused.emplace(stem, "plugin file " + path + " is refused: " + loaded.what());
    }
  }
  return set;
}

}  // namespace sockhook
