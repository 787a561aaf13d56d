#include "commands/hook_entry.hpp"

#include <map>
#include <string>
#include <utility>

#include <doctest/doctest.h>

namespace sockhook {
namespace {

TEST_CASE("The hook acts only on the five operations it handles") {
  using Op = std::pair<std::string, std::string>;
  const std::map<Op, HookAction> handled{{{"prepare", "begin"}, HookAction::kPrepare},
                                         {{"start", "begin"}, HookAction::kStart},
                                         {{"release", "end"}, HookAction::kRelease},
                                         {{"reconnect", "begin"}, HookAction::kReconnect},
                                         {{"migrate", "begin"}, HookAction::kMigrate}};
  // Every other pair (restore, started, stopped...) does nothing.
  for (const char* op :
       {"prepare", "start", "release", "reconnect", "started", "stopped", "migrate", "restore", ""})
    for (const char* sub : {"begin", "end", "-", ""}) {
      CAPTURE(op);
      CAPTURE(sub);
      auto it = handled.find({op, sub});
      auto expected = it == handled.end() ? HookAction::kNone : it->second;
      CHECK(hook_action(HookArgs{"vm1", op, sub, "-"}) == expected);
    }
}

TEST_CASE("The hook knows libvirt's hook paths from argv[0]") {
  for (const char* hook : {"/etc/libvirt/hooks/qemu", "/etc/libvirt/hooks/qemu.d/sockhook"})
    CHECK_MESSAGE(invoked_as_hook(hook), hook);
  for (const char* other : {"sockhook", "/usr/bin/sockhook", "/etc/libvirt/hooks/network"})
    CHECK_MESSAGE(!invoked_as_hook(other), other);
}

TEST_CASE("The hook reads the domain's UUID in lower case, and only a valid one") {
  CHECK(uuid_of("<domain><uuid>0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D</uuid></domain>") ==
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
  for (const char* bad : {"<domain><uuid>not-a-uuid</uuid></domain>", "<domain/>", "not xml"})
    CHECK_MESSAGE(uuid_of(bad).empty(), bad);
}

}  // namespace
}  // namespace sockhook
