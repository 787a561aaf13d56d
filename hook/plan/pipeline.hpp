#pragma once

#include <cstddef>
#include <string>

#include "plan/gather.hpp"
#include "plan/plan.hpp"

namespace sockhook {

// Domain XML in, plan out, the same for the hook, `plan`, `doctor` and `annotate`:
// read the XML (read_domain_xml), parse it (parse_domain_xml), gather the host facts and
// plan (gather_and_plan). Nothing here calls libvirt: the hook uses it.

/// The most domain XML sockhook reads, from any source.
inline constexpr std::size_t kMaxDomainXmlBytes = 16 * 1024 * 1024;

/// Reads domain XML from `file`, or from stdin if `file` is "-", at most kMaxDomainXmlBytes.
/// Throws Error.
std::string read_domain_xml(const std::string& file);

/// Gathers the host facts for the parsed `g.domain` and plans. Throws Error only for
/// host-level failures (an untrusted policy file, no QEMU user); the rest is in the plan.
Plan gather_and_plan(Gathered& g, const GatherOptions& options);

}  // namespace sockhook
