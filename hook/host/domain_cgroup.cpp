#include "host/domain_cgroup.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <vector>

#include "base/split.hpp"

namespace sockhook {
namespace {

/// The components of an absolute path ("" for "/").
std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  for (auto part : split(path, '/'))
    if (!part.empty()) out.push_back(part);
  return out;
}

/// libvirt's escape of one cgroup directory name it creates (virCgroupPartitionEscape): a
/// leading '_' where the name could be taken for a control file or a controller.
std::string escape_cgroup_name(std::string name) {
  static constexpr std::array kControllers = {
      "cpu",     "cpuacct",  "cpuset",     "memory",  "devices", "freezer", "blkio",
      "net_cls", "net_prio", "perf_event", "hugetlb", "pids",    "rdma",    "misc"};
  auto stem = std::string_view(name).substr(0, name.find('.'));
  bool controller = std::find(kControllers.begin(), kControllers.end(), stem) != kControllers.end();
  if (name.starts_with('_') || name.starts_with('.') || name.starts_with("cgroup.") || controller)
    name.insert(0, "_");
  return name;
}

/// systemd's escape of one unit name component: letters, digits, ':', '_' and a '.' that does
/// not lead stay; every other byte becomes \xNN ('-' too, which separates slice levels).
std::string escape_unit_part(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == ':' || c == '_' || (c == '.' && i > 0);
    if (keep) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

/// The partition's directories without systemd (virCgroupSetPartitionSuffix): the top-level
/// machine, system and user stay; any other name without a '.' gains ".partition".
std::vector<std::string> plain_partition(std::string_view partition) {
  std::vector<std::string> out;
  for (auto part : components(partition)) {
    std::string name(part);
    bool fixed = out.empty() && (name == "machine" || name == "system" || name == "user");
    if (!fixed && name.find('.') == std::string::npos) name += ".partition";
    out.push_back(escape_cgroup_name(std::move(name)));
  }
  return out;
}

/// The partition's directories with systemd: "/a/b" is the slice a-b.slice, which systemd
/// nests as /a.slice/a-b.slice.
std::vector<std::string> slice_partition(std::string_view partition) {
  std::vector<std::string> out;
  std::string prefix;
  for (auto part : components(partition)) {
    prefix += (prefix.empty() ? "" : "-") + escape_unit_part(part);
    out.push_back(prefix + ".slice");
  }
  return out;
}

/// Whether `name` is "<head><id>" + optionally "<sep><anything>" + "<tail>".
bool is_domain_dir(std::string_view name, std::string_view head, long id, std::string_view sep,
                   std::string_view tail) {
  auto number = std::to_string(id);
  if (!name.starts_with(head)) return false;
  name.remove_prefix(head.size());
  if (!name.starts_with(number)) return false;
  name.remove_prefix(number.size());
  if (!name.ends_with(tail)) return false;
  name.remove_suffix(tail.size());
  // Right after the id comes the name's separator or nothing: "qemu-1-" never matches id 12.
  return name.empty() || name.starts_with(sep);
}

bool starts_with_dirs(const std::vector<std::string_view>& path,
                      const std::vector<std::string>& dirs) {
  if (path.size() <= dirs.size()) return false;
  return std::equal(dirs.begin(), dirs.end(), path.begin());
}

}  // namespace

std::string DomainCgroup::to_string() const { return std::to_string(id) + ":" + partition; }

std::optional<DomainCgroup> DomainCgroup::parse(std::string_view s) {
  auto colon = s.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  DomainCgroup d;
  auto digits = s.substr(0, colon);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), d.id);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || d.id < -1)
    return std::nullopt;
  d.partition = std::string(s.substr(colon + 1));
  if (!d.partition.starts_with('/')) return std::nullopt;
  auto parts = components(d.partition);
  if (parts.empty()) return std::nullopt;
  for (auto part : parts)
    if (part == "." || part == "..") return std::nullopt;
  return d;
}

std::string describe_domain_cgroup(const DomainCgroup& d) {
  auto id = d.id < 0 ? std::string("<id>") : std::to_string(d.id);
  std::string plain, systemd;
  for (const auto& dir : plain_partition(d.partition)) plain += "/" + dir;
  for (const auto& dir : slice_partition(d.partition)) systemd += "/" + dir;
  return plain + "/qemu-" + id + "[-*].libvirt-qemu or " + systemd + "/machine-qemu\\x2d" + id +
         "[\\x2d*].scope";
}

bool cgroup_path_in_domain(std::string_view path, const DomainCgroup& d) {
  if (d.id < 0 || !path.starts_with('/')) return false;
  auto parts = components(path);
  for (auto part : parts)
    if (part == "." || part == "..") return false;
  if (auto dirs = plain_partition(d.partition);
      starts_with_dirs(parts, dirs) &&
      is_domain_dir(parts[dirs.size()], "qemu-", d.id, "-", ".libvirt-qemu"))
    return true;
  if (auto dirs = slice_partition(d.partition);
      starts_with_dirs(parts, dirs) &&
      is_domain_dir(parts[dirs.size()], "machine-qemu\\x2d", d.id, "\\x2d", ".scope"))
    return true;
  return false;
}

bool proc_cgroup_in_domain(std::string_view proc_cgroup, const DomainCgroup& d) {
  // Each line is "hierarchy-id:controllers:path"; the path is the rest of the line, so a
  // directory name with a ':' in it cannot shift the fields.
  for (auto line : split(proc_cgroup, '\n')) {
    auto first = line.find(':');
    if (first == std::string_view::npos) continue;
    auto second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    if (cgroup_path_in_domain(line.substr(second + 1), d)) return true;
  }
  return false;
}

}  // namespace sockhook
