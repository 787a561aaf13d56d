#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sockhook {

/// A companion file that QEMU needs next to the socket (e.g. the PulseAudio cookie).
struct PluginFile {
  std::string path;    ///< "~/..." (owner's home), relative (runtime dir) or absolute (admin only)
  std::string target;  ///< plain file name inside the lend directory
  bool optional = false;
  /// Fixed content given by the plugin instead of a path (e.g. a client.conf for QEMU).
  std::optional<std::string> content;
};

/// An environment variable QEMU needs; the value may use {variables}.
struct PluginEnv {
  std::string name;
  std::string value;
};

/// A native libvirt attribute that carries the same information as an env variable, for
/// libvirt versions that have it (e.g. <audio type='pulseaudio' serverName=...>).
struct PluginAudioAttr {
  std::string audio_type;         ///< the <audio type=...> it applies to
  std::string attribute;          ///< e.g. "serverName", "runtimeDir", "output.serverName"
  std::string value;              ///< may use {variables}
  std::string covers;             ///< the env variable it replaces
  unsigned long min_libvirt = 0;  ///< libvirt version number (major*1e6+minor*1e3+micro)
};

/// One kind of socket, loaded from a trusted XML file (SPEC §3). Plugins are data.
struct Plugin {
  std::string name;
  std::string summary;
  std::string file;         ///< where it was loaded from
  bool admin = false;       ///< loaded from the administrator's directory
  std::string socket_path;  ///< relative to the runtime dir, or absolute (admin only)
  /// Every place the socket may be, `socket_path` first (<socket path=...> and its
  /// <candidate path=.../> children): gather picks the owner's live one (choose_candidate),
  /// e.g. wayland-0 on GNOME, wayland-1 on sway.
  std::vector<std::string> socket_paths;
  std::string socket_target;  ///< plain file name in the lend directory
  std::vector<PluginFile> files;
  std::vector<PluginEnv> env;
  std::vector<PluginAudioAttr> audio;
  /// <plugin audio="jack">: the plugin exists to carry QEMU's audio through this libvirt
  /// <audio type>; `annotate` adds that backend (and a sound card) when the domain lacks it.
  std::string audio_backend;
  /// <plugin graphics="sdl">: the plugin carries QEMU's own display; `annotate` adds a
  /// <graphics type=...> of that type when the domain has none.
  std::string graphics;
  /// <reach>: one line, what the VM can reach through this socket where the server cannot
  /// restrict its client (S9), e.g. "this VM can also record your microphone". `plan`,
  /// `annotate` and `doctor` say it for every such lend; never silently.
  std::string reach;

  /// socket_paths, or socket_path alone for a Plugin built without the parser.
  std::vector<std::string> candidates() const {
    return socket_paths.empty() ? std::vector<std::string>{socket_path} : socket_paths;
  }

  /// <plugin context="pipewire|wayland">: the socket is a PipeWire server or a Wayland
  /// compositor on which method context can create a security context (lend_context.hpp).
  std::string context;
};

/// Values for {variable} expansion.
struct Variables {
  std::string runtime_dir, home, user, uid, lend_dir, target;
  /// Where companion files go: the domain's lend directory under /run/sockhook, whatever the
  /// method. For acl and group, {lend_dir} is the socket's own directory (SPEC §4), which is
  /// the user's and no place for a copy of their cookie.
  std::string files_dir;
};

/// Replaces {runtime_dir}, {home}, {user}, {uid}, {lend_dir}, {target} and {files_dir}.
/// Throws Error for an unknown or unterminated variable.
std::string expand(std::string_view text, const Variables& vars);

/// Parses one plugin file's text. `admin` allows absolute socket paths. Throws Error with
/// a one-line reason for anything invalid.
Plugin parse_plugin(std::string_view xml, bool admin, const std::string& file);

/// True for a plain file name: no '/', not "." or "..", no control characters.
bool is_plain_file_name(std::string_view s);

/// All plugins found on the search path, plus the ones that were refused and why.
struct PluginSet {
  std::map<std::string, Plugin> plugins;
  std::map<std::string, std::string> refused;  ///< plugin name (file stem) → reason
  std::vector<std::string> problems;           ///< directory-level problems

  /// The plugin, or nullptr (then `why_missing` says why).
  const Plugin* find(const std::string& name) const;

  /// Why `name` is not in `plugins`: the reason it was refused, or that none is installed.
  std::string why_missing(const std::string& name) const;
};

/// A directory on the plugin search path.
struct PluginDir {
  std::string path;
  bool admin = false;  ///< the administrator's directory: absolute socket paths allowed
};

/// The default search path: the administrator's directory first, then the data directory.
std::vector<PluginDir> default_plugin_dirs();

/// Loads plugins from `dirs`, earlier directories overriding later ones by name. Files and
/// directories must be owned by one of `trusted_uids` and not writable by group or others
/// (S3).
PluginSet load_plugins(const std::vector<PluginDir>& dirs, const std::vector<uid_t>& trusted_uids);

}  // namespace sockhook
