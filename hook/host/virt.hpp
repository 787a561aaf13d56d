#pragma once

#include <memory>
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

}  // namespace sockhook
