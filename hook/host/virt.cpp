#include "host/virt.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "base/error.hpp"
#include "model/domain_xml.hpp"
#include "sys/creds.hpp"
#include "sys/fd.hpp"
#include "sys/pidfd.hpp"

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
  decltype(&virGetLastErrorCode) last_error_code = nullptr;
  decltype(&virGetLastError) last_error_full = nullptr;
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
    bind(api.handle, api.last_error_code, "virGetLastErrorCode");
    bind(api.handle, api.last_error_full, "virGetLastError");
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

  /// The domain `id` (a name or UUID), or null if libvirt has no such domain. Throws Error if
  /// libvirt could not say.
  DomainPtr find(const std::string& id) {
    DomainPtr d(is_valid_uuid(id) ? api().lookup_by_uuid(conn, id.c_str())
                                  : api().lookup_by_name(conn, id.c_str()));
    if (!d && api().last_error_code() != VIR_ERR_NO_DOMAIN) fail("cannot find domain '" + id + "'");
    return d;
  }

  /// The domain `id`. Throws Error if there is none, or libvirt could not say.
  DomainPtr lookup(const std::string& id) {
    auto d = find(id);
    if (!d) fail("cannot find domain '" + id + "'");
    return d;
  }

  /// True if the domain `d` (`id`) runs.
  static bool active(virDomainPtr d, const std::string& id) {
    int r = api().is_active(d);
    if (r < 0) fail("cannot tell whether '" + id + "' runs");
    return r == 1;
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
  if (impl_->conn) return;
  // A system error carries the errno of the failed socket call: it tells a daemon that is not
  // there (ENOENT, ECONNREFUSED) from one that is (domain_activity).
  const virError* e = api().last_error_full();
  throw Error(
      "cannot connect to libvirt" + (uri.empty() ? "" : " at " + uri) + ": " + api().last_error(),
      e && e->code == VIR_ERR_SYSTEM_ERROR ? e->int1 : 0);
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

bool Virt::is_active(const std::string& id) { return Impl::active(impl_->lookup(id).get(), id); }

std::optional<bool> Virt::active_if_defined(const std::string& uuid) {
  auto d = impl_->find(uuid);
  if (!d) return std::nullopt;
  return Impl::active(d.get(), uuid);
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

DomainActivity activity_from_answer(const std::string& answer) {
  if (answer == "n") return DomainActivity::kNoLibvirt;
  if (answer == "r") return DomainActivity::kUnreachable;
  if (answer == "c") return DomainActivity::kHeld;
  if (answer == "cu" || answer == "ci") return DomainActivity::kNone;
  if (answer == "ca") return DomainActivity::kActive;
  return DomainActivity::kSilent;  // nothing, "ce", or what no child writes
}

namespace {

/// In a child of domain_activity: asks libvirt about `uuid` and writes the answer, one
/// letter at a time, to `out` (see activity_from_answer).
int answer_about(int out, const std::string& uri, const std::string& uuid) {
  // Safe: libvirt, not async-signal-safe, is fine in this fork_child child: cleanup has no threads.
  auto say = [out](char c) { return ::write(out, &c, 1) == 1; };
  auto virt = attempt([&] {
    auto v = std::make_unique<Virt>(uri);
    v->version();  // a call that names no domain: libvirt answers the connection
    return v;
  });
  if (!virt) {
    // Only a socket that is not there, or that nobody listens on, means no daemon: any other
    // failure (a daemon that hangs up, refuses us, runs out of clients) may hide a start.
    const int err = virt.error->err();
    return say(err == ENOENT || err == ECONNREFUSED ? 'n' : 'r') ? 0 : 1;
  }
  if (!say('c')) return 1;
  auto active = attempt([&] { return (*virt.value)->active_if_defined(uuid); });
  if (!active) return say('e') ? 0 : 1;
  const auto& defined = *active.value;
  return say(!defined ? 'u' : *defined ? 'a' : 'i') ? 0 : 1;
}

/// One child of domain_activity.
struct Asker {
  pid_t pid = -1;
  Fd pidfd, answers;
  std::string answer;
};

}  // namespace

std::vector<DomainActivity> domain_activity(const std::vector<std::string>& uuids, int timeout_ms,
                                            const std::string& uri) {
  // At most this many children at once (two descriptors each), in rounds of their own.
  constexpr std::size_t kMaxAskers = 32;
  if (uuids.size() > kMaxAskers) {
    std::vector<DomainActivity> all;
    for (std::size_t first = 0; first < uuids.size(); first += kMaxAskers) {
      auto last = std::min(uuids.size(), first + kMaxAskers);
      auto some = domain_activity({uuids.begin() + static_cast<std::ptrdiff_t>(first),
                                   uuids.begin() + static_cast<std::ptrdiff_t>(last)},
                                  timeout_ms, uri);
      all.insert(all.end(), some.begin(), some.end());
    }
    return all;
  }
  std::vector<DomainActivity> out(uuids.size(), DomainActivity::kSilent);
  Fd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return out;
  std::vector<Asker> askers(uuids.size());
  for (std::size_t i = 0; i < uuids.size(); ++i) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) continue;
    Fd read_end(fds[0]), write_end(fds[1]);
    // A child of its own for each: one domain that libvirt holds must not hide the others. It
    // keeps nothing of ours but the pipe (fork_child), and dies with us.
    const pid_t pid = fork_child(devnull.get(), {write_end.get()});
    if (pid == 0) ::_exit(answer_about(3, uri, uuids[i]));
    if (pid < 0) continue;
    // Our own unreaped child: the pid cannot be reused, so this pidfd is that process.
    askers[i].pid = pid;
    askers[i].pidfd = pidfd_open(pid);
    askers[i].answers = std::move(read_end);
  }
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    std::vector<pollfd> polled;
    std::vector<Asker*> whose;
    for (auto& a : askers)
      if (a.answers) {
        polled.push_back({a.answers.get(), POLLIN, 0});
        whose.push_back(&a);
      }
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (polled.empty() || left <= 0) break;
    if (retry_eintr([&] { return ::poll(polled.data(), polled.size(), static_cast<int>(left)); }) <=
        0)
      continue;
    for (std::size_t k = 0; k < polled.size(); ++k) {
      if (polled[k].revents == 0) continue;
      char buf[8];
      auto n = retry_eintr([&] { return ::read(polled[k].fd, buf, sizeof buf); });
      if (n > 0 && whose[k]->answer.size() < 4)
        whose[k]->answer.append(buf, static_cast<std::size_t>(n));
      else
        whose[k]->answers.reset();  // the end (or too much): the child has said all it will
    }
  }
  // Safe: our own unreaped children, so each pid is still that process and no other. One still
  // waiting on libvirt is killed; one that has answered is ending anyway.
  for (auto& a : askers)
    if (a.pid > 0 && a.answers) ::kill(a.pid, SIGKILL);
  const auto reap_deadline = Clock::now() + std::chrono::milliseconds(1000);
  for (std::size_t i = 0; i < askers.size(); ++i) {
    auto& a = askers[i];
    if (a.pid <= 0) continue;
    a.answers.reset();
    // A child that does not end in time is abandoned (init reaps it): it holds nothing but its
    // end of a pipe we closed, and dies with us.
    int status = 0;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(reap_deadline - Clock::now());
    if (!reap_within(a.pid, a.pidfd, static_cast<int>(std::max<long>(left.count(), 0)), status))
      ::kill(a.pid, SIGKILL);
    out[i] = activity_from_answer(a.answer);
  }
  return out;
}

}  // namespace sockhook
