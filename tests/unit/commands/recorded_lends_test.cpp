#include "commands/recorded_lends.hpp"

#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "journal/journal.hpp"
#include "lend/lends.hpp"
#include "test_files.hpp"

namespace sockhook {
namespace {

const std::string kUuidA = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const std::string kUuidB = "1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const std::string kUuidC = "2a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

JournalSocket socket_of(const std::string& name, const std::string& owner, uid_t uid) {
  JournalSocket s;
  s.name = name;
  s.plugin = name;
  s.method = Method::kProxy;
  s.owner = owner;
  s.owner_uid = uid;
  s.source = "/run/user/" + std::to_string(uid) + "/" + name;
  s.target = "/run/sockhook/libvirt-x/" + name;
  return s;
}

Journal journal_of(const std::string& domain, const std::string& uuid,
                   std::vector<JournalSocket> sockets) {
  Journal j;
  j.domain = domain;
  j.uuid = uuid;
  j.lend_dir = "/run/sockhook/libvirt-" + uuid;
  j.sockets = std::move(sockets);
  return j;
}

std::vector<std::string> names(const std::vector<LendStatus>& lends) {
  std::vector<std::string> out;
  for (const auto& l : lends) out.push_back(l.domain + "/" + l.socket);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("an owner's status holds the sockets the journals record with their uid, no others") {
  SKIP_UNLESS_ROOT("the journal store insists on a root-owned directory (run as root)");
  TempDir tmp;
  Paths paths;
  paths.lend_root = (tmp.path / "sockhook").string();
  paths.state_dir = paths.lend_root + "/state";
  JournalStore store(paths, true);
  // alice (1000) and bob (1001) lend to win11; bob alone to deb. One of bob's sockets is
  // written with alice's name: the uid decides, never the name.
  store.save(journal_of("win11", kUuidA,
                        {socket_of("pulseaudio", "alice", 1000), socket_of("jack", "bob", 1001),
                         socket_of("wayland", "alice", 1001)}));
  store.save(journal_of("deb", kUuidB, {socket_of("pipewire", "bob", 1001)}));
  // A journal nobody can read: it cannot be told whose it is.
  tmp.write("sockhook/state/" + kUuidC + ".xml", "<not a journal", 0600);

  CHECK(names(lend_status(paths, 1000)) == std::vector<std::string>{"win11/pulseaudio"});
  CHECK(names(lend_status(paths, 1001)) ==
        std::vector<std::string>{"deb/pipewire", "win11/jack", "win11/wayland"});
  CHECK(lend_status(paths, 1002).empty());
  // Root's status: every socket, and the unreadable journal as broken.
  auto all = lend_status(paths);
  CHECK(all.size() == 5u);
  CHECK(std::count_if(all.begin(), all.end(), [](const LendStatus& l) {
          return l.uuid == kUuidC && l.health == "broken";
        }) == 1);
}

TEST_CASE("a context behind its proxy: status names both processes, and each one's death") {
  JournalSocket s = socket_of("pipewire", "alice", 1000);
  s.method = Method::kContext;
  StartContext context{
      s.target + ".context", s.source, 1000, 1000, 64055, 64055, "win11", kUuidA, false};
  context.behind_proxy = true;
  StartProxy proxy{s.target, context.listen_path, 1000, 1000, 64055, 64055, "7:/machine"};
  proxy.source_fd = true;
  s.steps = {context, proxy};
  Journal j = journal_of("win11", kUuidA, {s});
  // Two processes that run, recorded with a start time no process has: both are dead to status,
  // whatever else runs on this machine.
  ProxyStarted holder;
  holder.socket = s.name;
  holder.path = context.listen_path;
  holder.pid = ::getpid();
  holder.starttime = 1;
  ProxyStarted served = holder;
  served.path = s.target;
  served.pid = ::getppid();
  j.entries = {holder, served};

  auto h = health_of(j, s);
  CHECK(h.holder_pid == ::getpid());
  CHECK(h.proxy_pid == ::getppid());  // the process QEMU connects to
  CHECK(h.health == "broken");
  CHECK(h.why.find("the context's holder is not running, so PipeWire no longer serves the VM") !=
        std::string::npos);
  CHECK(h.why.find("the proxy is not running") != std::string::npos);
  CHECK(h.why.find("restarts them too") != std::string::npos);
}

}  // namespace sockhook
