#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "domain_xml.hpp"
#include "paths.hpp"
#include "plugin.hpp"
#include "policy.hpp"
#include "qemu_identity.hpp"
#include "step.hpp"
#include "sys/users.hpp"

namespace sockhook {

/// An environment variable QEMU needs, and whether the domain XML already provides it.
struct EnvNeed {
  std::string name;
  std::string value;
  bool provided = false;
  std::string provided_by;  ///< "qemu:env" or "<audio type='x' attr=...>"
};

/// Everything about lending one socket.
struct SocketPlan {
  SocketRequest request;
  std::string plugin_file;
  User owner;
  Method method = Method::kBind;  ///< resolved: never kAuto
  std::string method_note;        ///< why auto chose what it chose
  std::string source;             ///< the real socket's absolute path
  std::string target;             ///< the path QEMU uses ({target})
  std::vector<Step> steps;
  std::vector<EnvNeed> env;
  std::vector<std::string> exposes;  ///< other entries an acl/group grant makes reachable
  std::vector<std::string> warnings;
};

/// The whole plan for one domain and operation. Pure data.
struct Plan {
  std::string domain;
  std::string uuid;
  QemuIdentity qemu;
  std::string lend_dir;
  std::vector<Step> domain_steps;  ///< before any socket: the lend directory
  std::vector<SocketPlan> sockets;
  std::vector<std::string> errors;    ///< "<socket>: <problem>" lines that fail the start
  std::vector<std::string> warnings;  ///< everything else worth saying

  /// True if the start must fail.
  bool failed() const { return !errors.empty(); }
};

/// What planning may know about the source socket; gathered before planning.
struct SourceFacts {
  std::optional<bool> exists;                      ///< nullopt: could not look
  std::optional<std::vector<std::string>> nearby;  ///< entries of each granted directory
};

/// Everything planning needs, gathered beforehand, so that make_plan makes no system calls.
struct PlanInputs {
  const DomainInfo* domain = nullptr;
  const PluginSet* plugins = nullptr;
  const Policy* policy = nullptr;
  QemuIdentity qemu;
  std::map<std::string, std::optional<User>> owners;  ///< by owner as written
  uid_t uid_min = 1000;
  std::map<std::string, SourceFacts> sources;  ///< by socket name
  Paths paths;
};

/// Turns the gathered inputs into a plan. Pure: no system calls, no I/O.
Plan make_plan(const PlanInputs& in);

/// The plan for people: numbered steps, environment, warnings.
std::string format_plan(const Plan& plan);
/// The plan for programs.
nlohmann::json plan_to_json(const Plan& plan);

/// The default wait for a method that waits (SPEC §2).
inline constexpr int kDefaultWaitSeconds = 5;
/// The most a companion file may hold (S8). The PulseAudio cookie is 256 bytes.
inline constexpr std::size_t kMaxCompanionBytes = 64 * 1024;

}  // namespace sockhook
