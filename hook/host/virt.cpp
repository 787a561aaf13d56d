#include "host/virt.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <memory>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "base/error.hpp"
#include "model/domain_xml.hpp"

namespace sockhook {
namespace {

/// The libvirt functions we call, looked up once.
struct Api {
  void* handle = nullptr;
  decltype(&virConnectOpen) connect_open = nullptr;
  decltype(&virConnectClose) connect_close = nullptr;
  decltype(&virConnectGetLibVersion) get_lib_version = nullptr;
  decltype(&virGetVersion) get_version = nullptr;
  decltype(&virDomainLookupByName) lookup_by_name = nullptr;
  decltype(&virDomainLookupByUUIDString) lookup_by_uuid = nullptr;
  decltype(&virDomainGetUUIDString) get_uuid = nullptr;
  decltype(&virDomainGetName) get_name = nullptr;
  decltype(&virDomainGetXMLDesc) get_xml = nullptr;
  decltype(&virDomainDefineXML) define_xml = nullptr;
  decltype(&virDomainIsActive) is_active = nullptr;
  decltype(&virConnectListAllDomains) list_all = nullptr;
  decltype(&virDomainFree) domain_free = nullptr;
  decltype(&virGetLastErrorMessage) last_error = nullptr;
  decltype(&virSetErrorFunc) set_error_func = nullptr;
};

/// libvirt prints every error to stderr by default; we report them ourselves, once.
void ignore_error(void*, virErrorPtr) {}

template <typename T>
void bind(void* handle, T& fn, const char* name) {
  fn = reinterpret_cast<T>(::dlsym(handle, name));
  if (!fn) throw Error(std::string("cannot use libvirt: it lacks ") + name);
}

const Api& api() {
  static Api a = [] {
    Api api;
    api.handle = ::dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!api.handle) throw Error(std::string("cannot load libvirt: ") + ::dlerror());
    bind(api.handle, api.connect_open, "virConnectOpen");
    bind(api.handle, api.connect_close, "virConnectClose");
    bind(api.handle, api.get_lib_version, "virConnectGetLibVersion");
    bind(api.handle, api.get_version, "virGetVersion");
    bind(api.handle, api.lookup_by_name, "virDomainLookupByName");
    bind(api.handle, api.lookup_by_uuid, "virDomainLookupByUUIDString");
    bind(api.handle, api.get_uuid, "virDomainGetUUIDString");
    bind(api.handle, api.get_name, "virDomainGetName");
    bind(api.handle, api.get_xml, "virDomainGetXMLDesc");
    bind(api.handle, api.define_xml, "virDomainDefineXML");
    bind(api.handle, api.is_active, "virDomainIsActive");
    bind(api.handle, api.list_all, "virConnectListAllDomains");
    bind(api.handle, api.domain_free, "virDomainFree");
    bind(api.handle, api.last_error, "virGetLastErrorMessage");
    bind(api.handle, api.set_error_func, "virSetErrorFunc");
    api.set_error_func(nullptr, ignore_error);
    return api;
  }();
  return a;
}

struct DomainFree {
  void operator()(virDomainPtr d) const { api().domain_free(d); }
};
using DomainPtr = std::unique_ptr<virDomain, DomainFree>;

[[noreturn]] void fail(const std::string& what) { throw Error(what + ": " + api().last_error()); }

}  // namespace

struct Virt::Impl {
  virConnectPtr conn = nullptr;

  DomainPtr lookup(const std::string& id) {
    virDomainPtr d = is_valid_uuid(id) ? api().lookup_by_uuid(conn, id.c_str())
                                       : api().lookup_by_name(conn, id.c_str());
    if (!d) fail("cannot find domain '" + id + "'");
    return DomainPtr(d);
  }

  /// The domain's XML with `flags`; `what` names it in the error ("the XML").
  std::string xml(const std::string& id, unsigned int flags, const std::string& what) {
    auto d = lookup(id);
    // libvirt hands over a malloc'd string: owned here until copied.
    std::unique_ptr<char, decltype(&::free)> text(api().get_xml(d.get(), flags), &::free);
    if (!text) fail("cannot read " + what + " of '" + id + "'");
    return text.get();
  }
};

Virt::Virt(const std::string& uri) : impl_(std::make_unique<Impl>()) {
  impl_->conn = api().connect_open(uri.empty() ? nullptr : uri.c_str());
  if (!impl_->conn) fail("cannot connect to libvirt" + (uri.empty() ? "" : " at " + uri));
}

Virt::~Virt() {
  if (impl_->conn) api().connect_close(impl_->conn);
}

std::string Virt::uuid_of(const std::string& id) {
  auto d = impl_->lookup(id);
  char buf[VIR_UUID_STRING_BUFLEN];
  if (api().get_uuid(d.get(), buf) != 0) fail("cannot read the UUID of '" + id + "'");
  return buf;
}

std::string Virt::name_of(const std::string& id) {
  auto d = impl_->lookup(id);
  const char* n = api().get_name(d.get());
  if (!n) fail("cannot read the name of '" + id + "'");
  return n;
}

std::string Virt::xml_of(const std::string& id, bool inactive) {
  return impl_->xml(id, inactive ? VIR_DOMAIN_XML_INACTIVE : 0, "the XML");
}

std::string Virt::xml_for_edit(const std::string& id) {
  return impl_->xml(id, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE,
                    "the persistent definition");
}

void Virt::define(const std::string& xml) {
  virDomainPtr d = api().define_xml(impl_->conn, xml.c_str());
  if (!d) fail("cannot define the domain");
  api().domain_free(d);
}

bool Virt::is_active(const std::string& id) {
  auto d = impl_->lookup(id);
  int r = api().is_active(d.get());
  if (r < 0) fail("cannot tell whether '" + id + "' runs");
  return r == 1;
}

std::vector<std::string> Virt::autostarted() {
  virDomainPtr* list = nullptr;
  int n = api().list_all(impl_->conn, &list,
                         VIR_CONNECT_LIST_DOMAINS_AUTOSTART | VIR_CONNECT_LIST_DOMAINS_PERSISTENT);
  if (n < 0) fail("cannot list the autostarted domains");
  std::vector<std::string> uuids;
  for (int i = 0; i < n; ++i) {
    DomainPtr d(list[i]);  // freed whatever happens below
    char buf[VIR_UUID_STRING_BUFLEN];
    if (api().get_uuid(d.get(), buf) == 0) uuids.emplace_back(buf);
  }
  ::free(list);
  return uuids;
}

unsigned long Virt::version() {
  unsigned long v = 0;
  if (api().get_lib_version(impl_->conn, &v) != 0) fail("cannot read libvirt's version");
  return v;
}

unsigned long Virt::installed_version() noexcept {
  unsigned long v = 0;
  try {
    if (api().get_version(&v, nullptr, nullptr) == 0 && v > 0) return v;
  } catch (const Error&) {
  }
  return LIBVIR_VERSION_NUMBER;
}

}  // namespace sockhook
