#include "journal/journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "base/error.hpp"
#include "sys/file.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

const std::string kUuid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

namespace fs = std::filesystem;

/// A journal that uses every step and every entry kind, with awkward values.
Journal sample() {
  Journal j;
  j.domain = "win 11 <&\"'>";
  j.uuid = kUuid;
  j.lend_dir = "/run/sockhook/libvirt-" + kUuid;
  j.qemu_uid = 64055;
  j.qemu_gid = 107;
  JournalSocket s;
  s.name = "pulse";
  s.plugin = "pulseaudio";
  s.method = "bind";
  s.owner = "alice";
  s.owner_uid = 1000;
  s.source = "/run/user/1000/pulse/native";
  s.target = j.lend_dir + "/pulse-native";
  s.required = false;
  s.steps = {MakeLendDir{j.lend_dir, 64055},
             VerifySource{"/run/user/1000", "pulse/native", 1000, 5},
             CreateTarget{s.target},
             BindMount{s.source, s.target},
             GrantAcl{s.source, 64055, "rw", true, false},
             ChangeGroup{s.source, 107},
             CopyFile{"/home/alice", ".config/pulse/cookie", j.lend_dir + "/pulse-cookie", 1000,
                      64055, 65536, true},
             StartProxy{j.lend_dir + "/p", s.source, 1000, 1000, 64055, 107, "7:/machine"}};
  j.sockets.push_back(s);

  JournalEntry dir;
  dir.kind = EntryKind::kDir;
  dir.path = j.lend_dir;
  JournalEntry mount;
  mount.kind = EntryKind::kMount;
  mount.socket = "pulse";
  mount.path = s.target;
  mount.inode = {0xfd01, 123456789012ULL};
  // An acl and a group entry find their inode again the same way.
  auto shared_change = [&](EntryKind kind) {
    JournalEntry e;
    e.kind = kind;
    e.socket = "pulse";
    e.path = s.source;
    e.base = "/run/user/1000";
    e.relative = "pulse/native";
    e.inode = {42, 7};
    return e;
  };
  JournalEntry acl = shared_change(EntryKind::kAcl);
  acl.owner = 1000;
  acl.via_target = s.target;
  acl.uid = 64055;
  acl.perms = 6;
  acl.prior.mode = 0755;
  acl.prior.xattr = std::string("\x02\x00\x00\x00\x01\x00\x06\x00\xff\xff\xff\xff", 12);
  acl.prior.entry = 4;
  acl.prior.mask = 5;
  JournalEntry group = shared_change(EntryKind::kGroup);
  group.gid = 107;
  group.prior_gid = 1000;
  group.prior.mode = 0600;
  JournalEntry proxy;
  proxy.kind = EntryKind::kProxy;
  proxy.socket = "pulse";
  proxy.path = j.lend_dir + "/p";
  proxy.pid = 4321;
  proxy.starttime = 987654321;
  proxy.label = "win 11/pulse " + kUuid;
  proxy.owner = 1000;
  proxy.listen_ino = 555;
  j.entries = {dir, mount, acl, group, proxy};
  return j;
}

/// A lend root and state directory inside `tmp`.
Paths store_paths(const TempDir& tmp) {
  Paths paths;
  paths.lend_root = (tmp.path / "sockhook").string();
  paths.state_dir = paths.lend_root + "/state";
  return paths;
}

}  // namespace

TEST_CASE("a journal survives a round trip through XML unchanged") {
  auto j = sample();
  auto xml = journal_to_xml(j);
  auto back = journal_from_xml(xml);
  CHECK(journal_to_xml(back) == xml);
  CHECK(back.domain == j.domain);
  CHECK(back.qemu_gid == 107);
  REQUIRE(back.sockets.size() == 1);
  CHECK(back.sockets[0].required == false);
  REQUIRE(back.sockets[0].steps.size() == 8);
  auto* copy = std::get_if<CopyFile>(&back.sockets[0].steps[6]);
  REQUIRE(copy);
  CHECK(copy->max_bytes == 65536);
  CHECK(copy->optional);
  REQUIRE(back.entries.size() == 5);
  CHECK(back.entries[1].inode.ino == 123456789012ULL);
  const auto& acl = back.entries[2];
  CHECK(acl.kind == EntryKind::kAcl);
  REQUIRE(acl.prior.xattr);
  CHECK(*acl.prior.xattr == *j.entries[2].prior.xattr);  // binary bytes, NULs included
  CHECK(acl.prior.entry == 4u);
  CHECK(acl.prior.mask == 5u);
  CHECK(acl.prior.mode == 0755u);
  CHECK(back.entries[3].prior_gid == 1000u);
  CHECK(back.entries[4].starttime == 987654321ULL);
  CHECK(back.entries[4].listen_ino == 555ULL);
}

TEST_CASE("an ACL that was absent stays absent after a round trip") {
  auto j = sample();
  j.entries[2].prior.xattr.reset();
  j.entries[2].prior.entry.reset();
  j.entries[2].prior.mask.reset();
  auto back = journal_from_xml(journal_to_xml(j));
  CHECK_FALSE(back.entries[2].prior.xattr);
  CHECK_FALSE(back.entries[2].prior.entry);
  CHECK_FALSE(back.entries[2].prior.mask);
}

TEST_CASE("a corrupt journal is refused with a clear reason") {
  auto xml = journal_to_xml(sample());
  SUBCASE("not XML") {
    CHECK_THROWS_WITH_AS(journal_from_xml("<sockhook-journal"),
                         doctest::Contains("corrupt journal"), Error);
  }
  SUBCASE("truncated") { CHECK_THROWS_AS(journal_from_xml(xml.substr(0, xml.size() / 2)), Error); }
  SUBCASE("wrong root") {
    CHECK_THROWS_WITH_AS(journal_from_xml("<x/>"), doctest::Contains("root element"), Error);
  }
  SUBCASE("a value the parser cannot take") {
    struct Case {
      std::string from, to, reason;
    };
    for (const auto& c : {Case{"ino=\"123456789012\"", "ino=\"12x\"", "not a number"},
                          Case{"kind=\"mount\"", "kind=\"rmrf\"", "unknown entry kind"},
                          Case{"qemu-uid=\"64055\"", "qemu-uid=\"99999999999\"", "out of range"}}) {
      INFO(c.from << " -> " << c.to);
      auto bad = xml;
      auto at = bad.find(c.from);
      REQUIRE(at != std::string::npos);
      bad.replace(at, c.from.size(), c.to);
      CHECK_THROWS_WITH_AS(journal_from_xml(bad), doctest::Contains(c.reason.c_str()), Error);
    }
  }
  SUBCASE("bad hex") {
    auto bad = xml;
    auto at = bad.find("prior-acl=\"") + 11;
    bad[at] = 'z';
    CHECK_THROWS_AS(journal_from_xml(bad), Error);
  }
}

TEST_CASE("the journal store writes atomically into a root-only directory") {
  SKIP_UNLESS_ROOT("the store insists on a root-owned directory (run as root)");
  TempDir tmp;
  auto paths = store_paths(tmp);
  JournalStore store(paths, true);
  auto st = fs::status(paths.state_dir);
  CHECK(st.permissions() == fs::perms::owner_all);
  CHECK(fs::status(paths.lend_root).permissions() ==
        (fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec));

  CHECK_FALSE(store.load(kUuid));
  auto j = sample();
  store.save(j);
  auto file = fs::path(paths.state_dir) / (kUuid + ".xml");
  struct stat fst {};
  REQUIRE(::stat(file.c_str(), &fst) == 0);
  CHECK((fst.st_mode & 07777) == 0600u);
  // Only the journal: the temp file was renamed, not left behind.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(paths.state_dir))
    names.push_back(e.path().filename());
  CHECK(names == std::vector<std::string>{kUuid + ".xml"});
  CHECK(read_text(file) == journal_to_xml(j));
  auto back = store.load(kUuid);
  REQUIRE(back);
  CHECK(journal_to_xml(*back) == journal_to_xml(j));
  CHECK(store.uuids() == std::vector<std::string>{kUuid});

  SUBCASE("a journal others could write is refused") {
    fs::permissions(file, fs::perms::others_write, fs::perm_options::add);
    CHECK_THROWS_WITH_AS(store.load(kUuid),
                         doctest::Contains("is refused: it is writable by others"), Error);
  }
  SUBCASE("a corrupt journal is refused, not half-read") {
    std::ofstream(file) << "<sockhook-journal version=\"1\" domain=\"x\"";
    CHECK_THROWS_WITH_AS(store.load(kUuid), doctest::Contains("corrupt journal"), Error);
  }
  SUBCASE("a journal holding another domain is refused") {
    auto other = j;
    other.uuid = "0a1b2c3d-4e5f-4a6b-8c7d-000000000000";
    std::ofstream(file) << journal_to_xml(other);
    CHECK_THROWS_AS(store.load(kUuid), Error);
  }
  SUBCASE("a state directory that others can enter is refused") {
    fs::permissions(paths.state_dir, fs::perms::others_exec, fs::perm_options::add);
    CHECK_THROWS_WITH_AS(JournalStore(paths, false), doctest::Contains("root-only"), Error);
  }
  SUBCASE("remove deletes it, and a second remove is harmless") {
    store.remove(kUuid);
    CHECK_FALSE(fs::exists(file));
    CHECK_NOTHROW(store.remove(kUuid));
    CHECK(store.uuids().empty());
  }
}

}  // namespace sockhook

namespace sockhook {

TEST_CASE("the largest journal prepare can write loads again") {
  // Every field at its parse-time bound (hook/model/domain_xml.cpp): a 251-byte domain name, 32
  // sockets with 64-byte names and plugins, 32-byte owners, and every path at PATH_MAX.
  auto base = sample();
  Journal j = base;
  j.domain = std::string(251, 'n');
  j.sockets.clear();
  j.entries = {base.entries.front()};
  const std::string long_path = "/run/user/1000/" + std::string(4096 - 16, 'p');
  for (int i = 0; i < 32; ++i) {
    JournalSocket s = base.sockets.front();
    s.name = std::to_string(i) + std::string(62, 's');
    s.name.resize(64);
    s.plugin = std::string(64, 'q');
    s.owner = std::string(32, 'o');
    s.source = long_path;
    s.target = j.lend_dir + "/" + std::string(200, 't');
    for (auto& step : s.steps) {
      if (auto* v = std::get_if<GrantAcl>(&step)) v->path = long_path;
      if (auto* v = std::get_if<BindMount>(&step)) v->source = long_path;
      if (auto* v = std::get_if<StartProxy>(&step)) v->source = long_path;
      if (auto* v = std::get_if<CopyFile>(&step)) {
        v->base = long_path;
        v->relative = std::string(4096 - 16, 'r');
      }
    }
    j.sockets.push_back(s);
    for (auto e : base.entries) {
      if (e.kind == EntryKind::kDir) continue;
      e.socket = s.name;
      e.path = long_path;
      e.base = long_path;
      e.relative = std::string(4096 - 16, 'r');
      e.via_target = s.target;
      e.label = j.domain + "/" + s.name + " " + j.uuid;
      j.entries.push_back(e);
    }
  }
  auto xml = journal_to_xml(j);
  CAPTURE(xml.size());
  CHECK(xml.size() < kMaxJournalBytes);
  auto back = journal_from_xml(xml);
  CHECK(journal_to_xml(back) == xml);
  CHECK(back.sockets.size() == 32u);
}

TEST_CASE("the store refuses to write a journal that load could not read") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: the store insists on a root-owned directory (run as root)");
    return;
  }
  TempDir tmp;
  JournalStore store(store_paths(tmp), true);
  auto j = sample();
  j.domain = std::string(kMaxJournalBytes, 'n');
  CHECK_THROWS_AS(store.save(j), Error);
  CHECK_FALSE(store.has(kUuid));
}

}  // namespace sockhook
