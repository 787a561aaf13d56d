#include "model/plugin.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "fixtures.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

namespace fs = std::filesystem;

fs::path repo_plugins() { return fs::path(SOCKHOOK_SOURCE_DIR) / "plugins"; }

std::string simple_plugin(const std::string& name, const std::string& socket = "s.sock") {
  return "<plugin name='" + name + "' summary='test " + name + "'><socket path='" + socket +
         "' target='" + name + "-0'/></plugin>";
}

/// The shipped plugin `name`, parsed, with its name, socket path and number of variables checked.
/// The shipped plugin `name`, checked for its socket and its whole environment, in order.
Plugin shipped(const std::string& name, const std::string& socket_path,
               const std::vector<std::pair<std::string, std::string>>& env) {
  auto p = parse_plugin(read_text(repo_plugins() / (name + ".xml")), false, name + ".xml");
  CHECK(p.name == name);
  CHECK(p.socket_path == socket_path);
  REQUIRE(p.env.size() == env.size());
  for (std::size_t i = 0; i < env.size(); ++i) {
    CAPTURE(i);
    CHECK(p.env[i].name == env[i].first);
    CHECK(p.env[i].value == env[i].second);
  }
  return p;
}

/// Checks the plugin's single native <audio> attribute against `want`.
void check_only_audio(const Plugin& p, const PluginAudioAttr& want) {
  REQUIRE(p.audio.size() == 1);
  const auto& audio = p.audio[0];
  CHECK(audio.audio_type == want.audio_type);
  CHECK(audio.attribute == want.attribute);
  CHECK(audio.value == want.value);
  CHECK(audio.covers == want.covers);
  CHECK(audio.min_libvirt == want.min_libvirt);
}

TEST_CASE("Each shipped plugin parses") {
  SUBCASE("pipewire") {
    auto p = shipped("pipewire", "pipewire-0", {{"PIPEWIRE_RUNTIME_DIR", "{lend_dir}"}});
    CHECK(p.file == "pipewire.xml");
    CHECK_FALSE(p.admin);
    CHECK(p.socket_target == "pipewire-0");
    CHECK(p.files.empty());
    check_only_audio(p, {"pipewire", "runtimeDir", "{lend_dir}", "PIPEWIRE_RUNTIME_DIR", 9010000});
  }
  SUBCASE("pulseaudio") {
    auto p = shipped("pulseaudio", "pulse/native",
                     {{"PULSE_SERVER", "unix:{target}"},
                      {"PULSE_COOKIE", "{files_dir}/pulse-cookie"},
                      {"PULSE_CLIENTCONFIG", "{files_dir}/pulse-client.conf"}});
    CHECK(p.socket_target == "pulse-native");
    REQUIRE(p.files.size() == 2);
    CHECK(p.files[0].path == "~/.config/pulse/cookie");
    CHECK(p.files[0].target == "pulse-cookie");
    CHECK(p.files[0].optional);
    CHECK_FALSE(p.files[0].content);
    CHECK(p.files[1].path.empty());
    CHECK(p.files[1].target == "pulse-client.conf");
    CHECK(p.files[1].content == std::optional<std::string>("enable-shm = no\n"));
    check_only_audio(p, {"pulseaudio", "serverName", "unix:{target}", "PULSE_SERVER", 7002000});
  }
  SUBCASE("jack") {
    auto p = shipped("jack", "pipewire-0",
                     {{"PIPEWIRE_RUNTIME_DIR", "{lend_dir}"},
                      {"LD_LIBRARY_PATH", "/usr/lib/x86_64-linux-gnu/pipewire-0.3/jack"}});
    CHECK(p.audio_backend == "jack");
  }
  SUBCASE("wayland") {
    auto p = shipped("wayland", "wayland-0",
                     {{"WAYLAND_DISPLAY", "{target}"},
                      {"SDL_VIDEODRIVER", "wayland"},
                      {"SDL_RENDER_DRIVER", "software"}});
    CHECK(p.graphics == "sdl");
    // GNOME, KDE and weston listen on wayland-0; sway and Hyprland on wayland-1.
    CHECK(p.socket_paths == std::vector<std::string>{"wayland-0", "wayland-1"});
  }
}

TEST_CASE("A socket may list candidate paths, each checked as the socket's own") {
  auto p = parse_plugin(
      "<plugin name='w'><socket path='w-0' target='w'><candidate path='w-1'/>"
      "<candidate path='sub/w-2'/></socket></plugin>",
      false, "f");
  CHECK(p.socket_path == "w-0");
  CHECK(p.socket_paths == std::vector<std::string>{"w-0", "w-1", "sub/w-2"});
  CHECK(p.candidates() == p.socket_paths);
  CHECK(parse_plugin(simple_plugin("s", "s"), false, "f").candidates() ==
        std::vector<std::string>{"s"});
  const std::pair<const char*, const char*> cases[] = {
      {"<plugin name='p'><socket path='s' target='t'><candidate path='../x'/></socket></plugin>",
       "socket path '../x' is not a clean path"},
      {"<plugin name='p'><socket path='s' target='t'><candidate path='/run/x'/></socket>"
       "</plugin>",
       "socket path '/run/x' is absolute; only plugins in /etc/sockhook/plugins may use "
       "absolute paths"},
      {"<plugin name='p'><socket path='s' target='t'><candidate path='s'/></socket></plugin>",
       "socket path 's' is listed twice"},
      {"<plugin name='p'><socket path='s' target='t'><candidate/></socket></plugin>",
       "<candidate> lacks attribute 'path'"},
      {"<plugin name='p'><socket path='s' target='t'><exec/></socket></plugin>",
       "unknown element <exec> in <socket>"},
  };
  for (const auto& [xml, message] : cases) {
    CAPTURE(xml);
    CHECK_THROWS_WITH_AS(parse_plugin(xml, false, "f"), message, Error);
  }
}

TEST_CASE("<reach> is one line of text, said once") {
  auto p = parse_plugin(
      "<plugin name='r'><socket path='s' target='t'/><reach>\n  this VM can\n    hear\tyou  "
      "</reach></plugin>",
      false, "f");
  CHECK(p.reach == "this VM can hear you");
  CHECK(parse_plugin(simple_plugin("s", "s"), false, "f").reach.empty());
  CHECK_THROWS_WITH_AS(parse_plugin("<plugin name='r'><socket path='s' target='t'/>"
                                    "<reach>a</reach><reach>b</reach></plugin>",
                                    false, "f"),
                       "more than one <reach>", Error);
  CHECK_THROWS_WITH_AS(parse_plugin("<plugin name='r'><socket path='s' target='t'/>"
                                    "<reach> </reach></plugin>",
                                    false, "f"),
                       "<reach> is empty", Error);
}

TEST_CASE("Absolute paths are allowed only in the administrator's plugins") {
  auto xml = simple_plugin("abs", "/run/abs/socket");
  CHECK_THROWS_WITH_AS(parse_plugin(xml, false, "f"),
                       "socket path '/run/abs/socket' is absolute; only plugins in "
                       "/etc/sockhook/plugins may use absolute paths",
                       Error);
  auto p = parse_plugin(xml, true, "f");
  CHECK(p.admin);
  CHECK(p.socket_path == "/run/abs/socket");

  auto with_file =
      "<plugin name='f'><socket path='s' target='t'/><file path='/etc/cookie' "
      "target='c'/></plugin>";
  CHECK_THROWS_WITH_AS(parse_plugin(with_file, false, "f"),
                       "file path '/etc/cookie' is not allowed here", Error);
  CHECK(parse_plugin(with_file, true, "f").files.at(0).path == "/etc/cookie");
}

TEST_CASE("Invalid plugins are refused with a one-line reason") {
  const std::pair<const char*, const char*> cases[] = {
      {"<plugin name='p'><socket path='../x' target='t'/></plugin>",
       "socket path '../x' is not a clean path"},
      {"<plugin name='p'><socket path='a/../../x' target='t'/></plugin>",
       "socket path 'a/../../x' is not a clean path"},
      {"<plugin name='p'><socket path='a//b' target='t'/></plugin>",
       "socket path 'a//b' is not a clean path"},
      {"<plugin name='p'><socket path='a/./b' target='t'/></plugin>",
       "socket path 'a/./b' is not a clean path"},
      {"<plugin name='p'><socket path='a/' target='t'/></plugin>",
       "socket path 'a/' is not a clean path"},
      {"<plugin name='p'><socket path='' target='t'/></plugin>",
       "socket path '' is not a clean path"},
      {"<plugin name='p'><socket path='s' target='a/b'/></plugin>",
       "target 'a/b' is not a plain file name"},
      {"<plugin name='p'><socket path='s' target='..'/></plugin>",
       "target '..' is not a plain file name"},
      {"<plugin name='p'><socket path='s' target=''/></plugin>",
       "target '' is not a plain file name"},
      {"<plugin name='p'><socket path='s' target='t'/><file path='~/c' target='t'/></plugin>",
       "target 't' is used twice"},
      {"<plugin name='p'><socket path='s' target='t'/><file path='~/../c' target='c'/></plugin>",
       "file path '~/../c' is not allowed here"},
      {"<plugin name='p'><socket path='s' target='t'/><file path='~/' target='c'/></plugin>",
       "file path '~/' is not allowed here"},
      {"<plugin name='p'><socket path='s' target='t'/><env name='X' value='{password}'/></plugin>",
       "unknown variable {password} in '{password}'"},
      {"<plugin name='p'><socket path='s' target='t'/><env name='X' value='{target'/></plugin>",
       "unterminated variable in '{target'"},
      {"<plugin name='p'><socket path='s' target='t'/><env name='1X' value='v'/></plugin>",
       "'1X' is not an environment variable name"},
      {"<plugin name='p'><socket path='s' target='t'/><env name='A-B' value='v'/></plugin>",
       "'A-B' is not an environment variable name"},
      {"<plugin name='p'><socket path='s' target='t'/><env name='' value='v'/></plugin>",
       "'' is not an environment variable name"},
      {"<plugin name='p'><socket path='s' target='t'/><env name='LD_PRELOAD=x' value='v'/>"
       "</plugin>",
       "'LD_PRELOAD=x' is not an environment variable name"},
      {"<plugin name='p'><socket path='s' target='t'/><env name='X'/></plugin>",
       "<env> lacks attribute 'value'"},
      {"<plugin name='p'><socket path='s' target='t'/><exec cmd='rm'/></plugin>",
       "unknown element <exec>"},
      {"<plugin name='p'><socket path='s' target='t'/><audio type='pulseaudio' "
       "attribute='serverName' value='{nope}'/></plugin>",
       "unknown variable {nope} in '{nope}'"},
      {"<plugin name='p'><socket path='s' target='t'/><socket path='s2' target='t2'/></plugin>",
       "more than one <socket>"},
      {"<plugin name='p'><env name='X' value='v'/></plugin>", "no <socket> element"},
      {"<plugin><socket path='s' target='t'/></plugin>", "<plugin> lacks attribute 'name'"},
      {"<plugin name='p'><socket target='t'/></plugin>", "<socket> lacks attribute 'path'"},
      {"<plugin name='p'><socket path='s'/></plugin>", "<socket> lacks attribute 'target'"},
      {"<plug name='p'/>", "the root element is not <plugin>"},
      {"<plugin name='p' graphics='sdl/../x'><socket path='s' target='t'/></plugin>",
       "graphics='sdl/../x' is not a libvirt graphics type (sdl, vnc, ...)"},
  };
  for (const auto& [xml, message] : cases) {
    CAPTURE(xml);
    CHECK_THROWS_WITH_AS(parse_plugin(xml, true, "f"), message, Error);
  }
  SUBCASE("not XML at all") {
    CHECK_THROWS_AS(parse_plugin("<plugin name='p'>", false, "f"), Error);
    CHECK_THROWS_AS(parse_plugin("", false, "f"), Error);
  }
}

TEST_CASE("Companion file paths may be home-relative, runtime-relative or admin absolute") {
  auto p = parse_plugin(
      "<plugin name='p'><socket path='d/s' target='t'/><file path='~/.config/c' target='c1'/>"
      "<file path='rt/c' target='c2' optional='yes'/><file path='x' target='c3' optional='no'/>"
      "</plugin>",
      false, "f");
  REQUIRE(p.files.size() == 3);
  CHECK(p.files[0].path == "~/.config/c");
  CHECK_FALSE(p.files[0].optional);
  CHECK(p.files[1].path == "rt/c");
  CHECK(p.files[1].optional);
  CHECK_FALSE(p.files[2].optional);
}

TEST_CASE("is_plain_file_name refuses separators, dot names and control characters") {
  check_accepts_only([](const std::string& s) { return is_plain_file_name(s); },
                     {"pipewire-0", "...", ".hidden", std::string(255, 'x')},
                     {"", ".", "..", "a/b", "a\nb", std::string("a\0b", 3), std::string(256, 'x')});
}

TEST_CASE("expand replaces every variable") {
  Variables v{"/run/user/1000",   "/home/alice",        "alice",          "1000",
              "/run/user/1000/x", "/run/user/1000/x/t", "/run/sockhook/u"};
  CHECK(expand("{runtime_dir}|{home}|{user}|{uid}|{lend_dir}|{target}|{files_dir}", v) ==
        "/run/user/1000|/home/alice|alice|1000|/run/user/1000/x|/run/user/1000/x/t|"
        "/run/sockhook/u");
  CHECK(expand("unix:{target}", v) == "unix:/run/user/1000/x/t");
  CHECK(expand("{uid}{uid}", v) == "10001000");
  CHECK(expand("", v).empty());
  CHECK(expand("no variables } here", v) == "no variables } here");
  CHECK_THROWS_WITH_AS(expand("{home", v), "unterminated variable in '{home'", Error);
  CHECK_THROWS_WITH_AS(expand("{}", v), "unknown variable {} in '{}'", Error);
  CHECK_THROWS_WITH_AS(expand("{HOME}", v), "unknown variable {HOME} in '{HOME}'", Error);
  CHECK_THROWS_WITH_AS(expand("{user }", v), "unknown variable {user } in '{user }'", Error);
}

TEST_CASE("PluginSet::find explains a missing or refused plugin") {
  PluginSet set;
  set.plugins.emplace("pipewire", Plugin{});
  set.refused.emplace("wayland", "plugin file /x/wayland.xml is refused: it is writable by others");
  CHECK(set.find("pipewire") != nullptr);
  CHECK(set.find("wayland") == nullptr);
  CHECK(set.why_missing("wayland") ==
        "plugin file /x/wayland.xml is refused: it is writable by others");
  CHECK(set.find("jack") == nullptr);
  CHECK(set.why_missing("jack") == "no plugin named 'jack' is installed");
}

TEST_CASE("The default plugin search path puts the administrator first") {
  auto dirs = default_plugin_dirs();
  REQUIRE(dirs.size() == 2);
  CHECK(dirs[0].path == "/etc/sockhook/plugins");
  CHECK(dirs[0].admin);
  CHECK_FALSE(dirs[1].admin);
}

/// Why `set` refused the plugin file named `stem`.xml; fails the test unless it did, once.
std::string refusal(const PluginSet& set, const std::string& stem) {
  REQUIRE(set.refused.count(stem) == 1);
  return set.refused.at(stem);
}

/// The reason load_plugins gives for refusing the file at `path` because of `why`.
std::string refused_because(const fs::path& path, const std::string& why) {
  return "plugin file " + path.string() + " is refused: " + why;
}

/// The single directory-level problem of `set`; fails the test if there is not exactly one.
std::string only_problem(const PluginSet& set) {
  REQUIRE(set.problems.size() == 1);
  return set.problems[0];
}

TEST_CASE("load_plugins reads trusted directories and refuses untrusted files") {
  // Everything here is created by the test's own user, which we declare trusted.
  const std::vector<uid_t> me{::geteuid()};
  TempDir admin(0755), data(0755);
  // Only the data directory, as the package installs it, trusting `trusted`.
  auto load_data = [&](const std::vector<uid_t>& trusted) {
    return load_plugins({{data.path, false}}, trusted);
  };

  SUBCASE("the shipped plugins load from the repository") {
    // The repository checkout may be group-writable; copy it into a directory we control.
    for (const auto& e : fs::directory_iterator(repo_plugins()))
      data.write(e.path().filename(), read_text(e.path()));
    auto set = load_data(me);
    CHECK(set.refused.empty());
    CHECK(set.problems.empty());
    CHECK(set.plugins.size() == 4);
    for (const char* n : {"pipewire", "pulseaudio", "jack", "wayland"}) {
      CAPTURE(n);
      REQUIRE(set.find(n) != nullptr);
      CHECK(set.find(n)->file == (data.path / (std::string(n) + ".xml")).string());
      CHECK_FALSE(set.find(n)->admin);
    }
  }
  SUBCASE("the first directory wins by name") {
    admin.write("snd.xml", simple_plugin("snd", "/run/snd/socket"));
    data.write("snd.xml", simple_plugin("snd", "snd-0"));
    data.write("other.xml", simple_plugin("other"));
    auto set = load_plugins({{admin.path, true}, {data.path, false}}, me);
    CHECK(set.refused.empty());
    REQUIRE(set.plugins.size() == 2);
    CHECK(set.find("snd")->socket_path == "/run/snd/socket");
    CHECK(set.find("snd")->admin);
    CHECK(set.find("other")->socket_path == "s.sock");
  }
  SUBCASE("a refused plugin in the first directory is not replaced by a later one") {
    admin.write("snd.xml", simple_plugin("snd"), 0666);
    data.write("snd.xml", simple_plugin("snd"));
    auto set = load_plugins({{admin.path, true}, {data.path, false}}, me);
    CHECK(set.find("snd") == nullptr);
    CHECK(set.refused.count("snd") == 1);
  }
  SUBCASE("a file writable by others is refused") {
    auto p = data.write("snd.xml", simple_plugin("snd"), 0646);
    auto set = load_data(me);
    CHECK(set.plugins.empty());
    CHECK(refusal(set, "snd") == refused_because(p, "it is writable by others"));
    CHECK(set.find("snd") == nullptr);
    CHECK(set.why_missing("snd") == set.refused.at("snd"));
  }
  SUBCASE("a group-writable file is refused unless its group is root") {
    auto p = data.write("snd.xml", simple_plugin("snd"), 0664);
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    if (st.st_gid == 0) {
      // Running as root with group root: make it a non-root group.
      REQUIRE(::chown(p.c_str(), static_cast<uid_t>(-1), 65534) == 0);
    }
    auto set = load_data(me);
    CHECK(set.plugins.empty());
    CHECK(refusal(set, "snd") == refused_because(p, "it is writable by its group"));
  }
  SUBCASE("a file owned by an untrusted uid is refused") {
    auto p = data.write("snd.xml", simple_plugin("snd"));
    // Trust some other uid only: our own directory and file are then "not owned by root".
    uid_t other = ::geteuid() == 0 ? 1 : 0;
    auto set = load_data({other});
    // The directory is checked first, so the whole directory is ignored.
    CHECK(set.plugins.empty());
    CHECK(only_problem(set) == "ignoring plugin directory " + data.path.string() +
                                   ": it is owned by uid " + std::to_string(::geteuid()) +
                                   ", not root");
    if (::geteuid() == 0) {
      // As root we can make the directory trusted and only the file foreign.
      REQUIRE(::chown(data.path.c_str(), other, static_cast<gid_t>(-1)) == 0);
      REQUIRE(::chown(p.c_str(), 65534, static_cast<gid_t>(-1)) == 0);
      auto set2 = load_data({other});
      CHECK(set2.plugins.empty());
      CHECK(refusal(set2, "snd") == refused_because(p, "it is owned by uid 65534, not root"));
    } else {
      MESSAGE("not root: the foreign-owned file case is covered only for the directory");
    }
  }
  SUBCASE("a symlinked plugin file is refused, even to a trusted file") {
    auto real = admin.write("real.xml", simple_plugin("snd"));
    REQUIRE(::symlink(real.c_str(), (data.path / "snd.xml").c_str()) == 0);
    auto set = load_data(me);
    CHECK(set.plugins.empty());
    CHECK(refusal(set, "snd").starts_with(refused_because(data.path / "snd.xml", "cannot open")));
  }
  SUBCASE("a symlinked plugin directory is not followed") {
    data.write("snd.xml", simple_plugin("snd"));
    auto link = admin.path / "link";
    REQUIRE(::symlink(data.path.c_str(), link.c_str()) == 0);
    auto set = load_plugins({{link, false}}, me);
    CHECK(set.plugins.empty());
    CHECK(only_problem(set).starts_with("cannot open " + link.string() + ": "));
  }
  SUBCASE("a plugin whose name differs from its file name is refused") {
    auto p = data.write("snd.xml", simple_plugin("pipewire"));
    auto set = load_data(me);
    CHECK(set.find("pipewire") == nullptr);
    CHECK(refusal(set, "snd") ==
          refused_because(p, "it names itself 'pipewire'; the file must be pipewire.xml"));
  }
  SUBCASE("an invalid plugin is refused with the parser's reason") {
    auto p = data.write("snd.xml", simple_plugin("snd", "../x"));
    CHECK(refusal(load_data(me), "snd") ==
          refused_because(p, "socket path '../x' is not a clean path"));
  }
  SUBCASE("a non-admin directory may not use absolute paths") {
    data.write("snd.xml", simple_plugin("snd", "/run/snd"));
    auto set = load_data(me);
    CHECK(set.plugins.empty());
    CHECK(set.refused.count("snd") == 1);
  }
  SUBCASE("files that are not *.xml are ignored") {
    data.write("snd.xml.bak", simple_plugin("snd"));
    data.write("README", "not a plugin");
    data.write(".xml", simple_plugin("x"));
    data.write("ok.xml", simple_plugin("ok"));
    auto set = load_data(me);
    CHECK(set.refused.empty());
    REQUIRE(set.plugins.size() == 1);
    CHECK(set.plugins.begin()->first == "ok");
  }
  SUBCASE("a directory named *.xml is refused, not read") {
    fs::create_directory(data.path / "dir.xml");
    auto set = load_data(me);
    CHECK(set.plugins.empty());
    CHECK(contains(refusal(set, "dir"), "it is not a regular file"));
  }
  SUBCASE("a FIFO named *.xml does not block loading") {
    REQUIRE(::mkfifo((data.path / "fifo.xml").c_str(), 0644) == 0);
    CHECK(contains(refusal(load_data(me), "fifo"), "it is not a regular file"));
  }
  SUBCASE("an oversized plugin file is refused") {
    data.write("big.xml", "<plugin name='big'>" + std::string(70 * 1024, ' ') + "</plugin>");
    CHECK(contains(refusal(load_data(me), "big"), "larger than"));
  }
  SUBCASE("a directory writable by others is ignored with a problem line") {
    data.write("snd.xml", simple_plugin("snd"));
    REQUIRE(::chmod(data.path.c_str(), 0777) == 0);
    admin.write("other.xml", simple_plugin("other"));
    auto set = load_plugins({{data.path, false}, {admin.path, true}}, me);
    CHECK(set.find("snd") == nullptr);
    CHECK(set.find("other") != nullptr);
    CHECK(only_problem(set) ==
          "ignoring plugin directory " + data.path.string() + ": it is writable by others");
  }
  SUBCASE("a missing directory is silently skipped") {
    auto set = load_plugins({{(data.path / "nope").string(), true}}, me);
    CHECK(set.plugins.empty());
    CHECK(set.problems.empty());
  }
}

}  // namespace
}  // namespace sockhook
