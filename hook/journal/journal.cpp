#include "journal/journal.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include <pugixml.hpp>

#include "base/error.hpp"
#include "model/domain_xml.hpp"
#include "plan/journal_attr.hpp"
#include "sys/file.hpp"
#include "sys/root_dir.hpp"
#include "sys/trust.hpp"

namespace sockhook {
namespace {

using namespace journal_attr;

constexpr const char* kRoot = "sockhook-journal";

// Every effect is written the same way: kind, socket and path, then its kFields in order.
// The names and values are those the journal had when each effect was a hand-written case, so
// journals written before read the same, and are written back byte for byte.

void write_entry(pugi::xml_node parent, const Effect& effect) {
  auto n = parent.append_child("entry");
  std::visit(
      [&](const auto& e) {
        put(n, "kind", std::string(e.kKind));
        put(n, "socket", e.socket);
        put(n, "path", e.path);
        put_fields(n, e);
      },
      effect);
}

Effect read_entry(const pugi::xml_node& n) {
  auto kind = text(n, "kind");
  auto effect = alternative_named<Effect, ByKind>(kind);
  if (!effect) corrupt("unknown entry kind '" + kind + "'");
  std::visit(
      [&](auto& e) {
        e.socket = text(n, "socket");
        e.path = text(n, "path");
        get_fields(n, e);
      },
      *effect);
  return *effect;
}

Method read_method(const pugi::xml_node& n) {
  auto name = text(n, "method");
  auto method = parse_method(name);
  if (!method || *method == Method::kAuto) corrupt("unknown method '" + name + "'");
  return *method;
}

}  // namespace

void put_value(PermsText, pugi::xml_node& node, const char* name, Perms value) {
  put(node, name, perms_text(value));
}
void get_value(PermsText, const pugi::xml_node& node, const char* name, Perms& value) {
  value = parse_perms(text(node, name));
}
void put_value(Hex, pugi::xml_node& node, const char* name, const std::string& value) {
  put(node, name, to_hex(value));
}
void get_value(Hex, const pugi::xml_node& node, const char* name, std::string& value) {
  value = from_hex(text(node, name));
}

const JournalSocket* Journal::find_socket(const std::string& name) const {
  for (const auto& s : sockets)
    if (s.name == name) return &s;
  return nullptr;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string from_hex(std::string_view hex) {
  if (hex.size() % 2) corrupt("odd hex length");
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    corrupt(std::string("bad hex digit '") + c + "'");
  };
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2)
    out += static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1]));
  return out;
}

std::string journal_to_xml(const Journal& j) {
  pugi::xml_document doc;
  auto root = doc.append_child(kRoot);
  put(root, "version", 1);
  put(root, "domain", j.domain);
  put(root, "uuid", j.uuid);
  put(root, "lend-dir", j.lend_dir);
  put(root, "qemu-uid", j.qemu_uid);
  put(root, "qemu-gid", j.qemu_gid);
  for (const auto& s : j.sockets) {
    auto n = root.append_child("socket");
    put(n, "name", s.name);
    put(n, "plugin", s.plugin);
    put(n, "method", std::string(to_string(s.method)));
    put(n, "owner", s.owner);
    put(n, "owner-uid", s.owner_uid);
    put(n, "source", s.source);
    put(n, "target", s.target);
    put_flag(n, "required", s.required);
    for (const auto& step : s.steps) write_step(n, step);
  }
  for (const auto& e : j.entries) write_entry(root, e);
  std::ostringstream out;
  doc.save(out, "  ");
  return out.str();
}

Journal journal_from_xml(std::string_view xml) {
  pugi::xml_document doc;
  auto result = doc.load_buffer(xml.data(), xml.size());
  if (!result) corrupt(std::string("not valid XML: ") + result.description());
  auto root = doc.child(kRoot);
  if (!root) corrupt(std::string("the root element is not <") + kRoot + ">");
  if (number<int>(root, "version") != 1) corrupt("unknown version " + text(root, "version"));
  Journal j;
  j.domain = text(root, "domain");
  j.uuid = text(root, "uuid");
  if (!is_valid_uuid(j.uuid)) corrupt("bad uuid '" + j.uuid + "'");
  j.lend_dir = text(root, "lend-dir");
  j.qemu_uid = number<uid_t>(root, "qemu-uid");
  j.qemu_gid = number<gid_t>(root, "qemu-gid");
  for (auto n : root.children("socket")) {
    JournalSocket s;
    s.name = text(n, "name");
    s.plugin = text(n, "plugin");
    s.method = read_method(n);
    s.owner = text(n, "owner");
    s.owner_uid = number<uid_t>(n, "owner-uid");
    s.source = text(n, "source");
    s.target = text(n, "target");
    s.required = flag(n, "required");
    for (auto step : n.children("step")) s.steps.push_back(read_step(step));
    j.sockets.push_back(std::move(s));
  }
  for (auto n : root.children("entry")) j.entries.push_back(read_entry(n));
  return j;
}

namespace {

/// True for the effects whose undo removes or unmounts their path by name.
bool undone_by_name(const Effect& e) {
  return std::holds_alternative<DirMade>(e) || std::holds_alternative<FileMade>(e) ||
         std::holds_alternative<Mounted>(e) || std::holds_alternative<ProxyStarted>(e);
}

/// What an undo removes or unmounts by name (the lend directory, the files and sockets in it,
/// the bind mounts on them) must be the domain's lend directory, which carries its UUID in
/// its name (libvirt-<uuid>, S4), or lie directly in it: a journal that names anything else,
/// corrupt or written by hand, guides no undo (it is moved aside, and said so).
void check_removed_paths(const Journal& j) {
  const auto& dir = j.lend_dir;
  if (!dir.empty() && base_name(dir) != "libvirt-" + j.uuid)
    corrupt("its lend directory '" + dir + "' is not named libvirt-" + j.uuid);
  for (const auto& effect : j.entries) {
    if (!undone_by_name(effect)) continue;
    const auto& path = base_of(effect).path;
    auto name = base_name(path);
    const bool ours = std::holds_alternative<DirMade>(effect)
                          ? path == dir
                          : dir_name(path) == dir && name != "." && name != "..";
    if (dir.empty() || !ours)
      corrupt("it would remove " + path + ", which is not in its lend directory '" + dir + "'");
  }
}

}  // namespace

JournalStore::JournalStore(const Paths& paths, bool create) {
  if (create) {
    ensure_root_dir(paths.lend_root, 0711);
    dir_ = ensure_root_dir(paths.state_dir, 0700);
    return;
  }
  dir_ = Fd(openat2_fd(AT_FDCWD, paths.state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                       RESOLVE_NO_SYMLINKS));
  if (!dir_) {
    if (errno == ENOENT) return;
    throw_errno("cannot open " + paths.state_dir);
  }
  // Journals drive privileged undo: read them only from a directory nobody else can write.
  auto st = fstat_or_throw(dir_, paths.state_dir);
  if (!S_ISDIR(st.st_mode)) throw Error(paths.state_dir + " is not a directory");
  require_trusted(st, "state directory " + paths.state_dir, true);
}

std::optional<Journal> JournalStore::load(const std::string& uuid) const {
  if (!dir_ || !is_valid_uuid(uuid)) return std::nullopt;
  auto name = uuid + ".xml";
  Fd fd(::openat(dir_.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("cannot open journal " + name);
  }
  auto st = fstat_or_throw(fd, name);
  if (!S_ISREG(st.st_mode)) throw Error("journal " + name + " is not a regular file");
  require_trusted(st, "journal " + name, true);
  auto j = journal_from_xml(read_all(fd, kMaxJournalBytes));
  if (j.uuid != uuid) corrupt(name + " holds the journal of " + j.uuid);
  check_removed_paths(j);
  return j;
}

void JournalStore::save(const Journal& journal) const {
  auto text = journal_to_xml(journal);
  // What load cannot read cannot guide an undo: never write it. Callers save before each side
  // effect (R3), so a journal that would grow too large stops the lend before it acts.
  if (text.size() > kMaxJournalBytes)
    throw Error("the journal of " + journal.uuid + " would hold " + std::to_string(text.size()) +
                " bytes, more than the " + std::to_string(kMaxJournalBytes) +
                " that it may; nothing more is lent");
  write_file_atomic(dir_, journal.uuid + ".xml", text, 0600);
}

bool JournalStore::has(const std::string& uuid) const {
  return dir_ && ::faccessat(dir_.get(), (uuid + ".xml").c_str(), F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

void JournalStore::remove(const std::string& uuid) const {
  if (!dir_) return;
  auto name = uuid + ".xml";
  // Safe: beneath the verified root-only state directory's fd; the name is a checked UUID.
  if (::unlinkat(dir_.get(), name.c_str(), 0) != 0 && errno != ENOENT)
    throw_errno("cannot remove journal " + name);
  ::fsync(dir_.get());
}

std::vector<std::string> JournalStore::uuids() const {
  std::vector<std::string> out;
  if (!dir_) return out;
  for (const auto& name : list_directory(dir_)) {
    if (!name.ends_with(".xml")) continue;
    auto uuid = name.substr(0, name.size() - 4);
    if (is_valid_uuid(uuid)) out.push_back(uuid);
  }
  return out;
}

std::optional<JournalVersion> JournalStore::version(const std::string& uuid) const {
  struct stat st {};
  if (!dir_ || ::fstatat(dir_.get(), (uuid + ".xml").c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return std::nullopt;
  return JournalVersion{inode_of(st), st.st_ctim.tv_sec, st.st_ctim.tv_nsec};
}

}  // namespace sockhook
