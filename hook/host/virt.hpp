#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sockhook {

/// A connection to libvirt. The only user of libvirt's API. libvirt is loaded with dlopen
/// when a Virt is made, so the hook's process never maps it (and never calls it: the hook
/// runs under libvirt's domain lock, a call back would deadlock).
class Virt {
 public:
  /// Connects to `uri` (empty: LIBVIRT_DEFAULT_URI or libvirt's default). Throws Error.
  explicit Virt(const std::string& uri);
  ~Virt();
  Virt(const Virt&) = delete;
  Virt& operator=(const Virt&) = delete;

  /// The lower-case UUID of a domain given by name or UUID. Throws Error if there is none.
  std::string uuid_of(const std::string& name_or_uuid);
  /// The domain's name, given its name or UUID.
  std::string name_of(const std::string& name_or_uuid);
  /// The domain's XML; `inactive` gives the persistent definition.
  std::string xml_of(const std::string& name_or_uuid, bool inactive);
  /// The persistent definition as an editor must read it (INACTIVE|SECURE, like `virsh
  /// edit`): without SECURE, redefining would drop passwords such as a VNC password.
  std::string xml_for_edit(const std::string& name_or_uuid);
  /// Defines (or redefines) a domain from XML: the persistent configuration.
  void define(const std::string& xml);
  /// Whether the domain is running.
  bool is_active(const std::string& name_or_uuid);
  /// Whether the domain of `uuid` is active (nullopt: libvirt has no such domain). Throws
  /// Error on any other failure.
  std::optional<bool> active_if_defined(const std::string& uuid);
  /// The UUIDs of the persistent domains that libvirt starts at boot (the autostart flag).
  std::vector<std::string> autostarted();
  /// libvirt's version as major*1000000 + minor*1000 + micro.
  unsigned long version();

  /// The version of the installed libvirt library, without a connection (virGetVersion);
  /// if libvirt cannot be loaded, the version of the headers sockhook was built with.
  static unsigned long installed_version() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// What libvirt says of a domain whose QEMU does not run, for cleanup --stale.
enum class DomainActivity {
  kNone,         ///< libvirt has no such domain, or has it shut off: nothing is starting it
  kNoLibvirt,    ///< no daemon: libvirt's socket is not there or nobody listens on it
  kUnreachable,  ///< a daemon, but the connection failed otherwise: it may be starting it
  kActive,       ///< libvirt counts it as active: started (or stopped) right now
  kHeld,         ///< libvirt answered, but not about this domain, within the bound: a job holds
                 ///< it, as a start does from before the prepare hook until QEMU runs
  kSilent,       ///< libvirt did not answer at all within the bound, or failed to say
};

/// Asks libvirt (`uri`) about each of `uuids` at once, each in a child of its own (fork_child),
/// and gives up on what has not answered within `timeout_ms`: while a start runs the prepare
/// and start hooks and spawns QEMU, libvirt holds the domain's lock, and every call that names
/// the domain (even a lookup, or a list of all domains) waits until QEMU runs (LIBVIRT-NOTES,
/// "When libvirt runs the hook"). A child that has not answered is killed (abandoned if it does
/// not die). At most 32 children at a time: each round of 32 waits at most `timeout_ms` + 1 s.
/// Never throws.
std::vector<DomainActivity> domain_activity(const std::vector<std::string>& uuids, int timeout_ms,
                                            const std::string& uri = "qemu:///system");

/// The answer a child of domain_activity wrote ("c" once connected, then 'u' no such domain,
/// 'i' inactive, 'a' active, 'e' failed; "n" no daemon, "r" could not connect to the one there),
/// read as a DomainActivity.
DomainActivity activity_from_answer(const std::string& answer);

}  // namespace sockhook
