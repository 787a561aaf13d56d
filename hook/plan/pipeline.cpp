#include "plan/pipeline.hpp"

#include <unistd.h>

#include "base/error.hpp"
#include "sys/fd.hpp"
#include "sys/file.hpp"

namespace sockhook {

std::string read_domain_xml(const std::string& file) {
  if (file != "-") return read_file(file, kMaxDomainXmlBytes);
  // stdin is not ours to close: read it in place, with the same cap as a file.
  std::string xml;
  char buf[16384];
  for (;;) {
    auto n = retry_eintr([&] { return ::read(STDIN_FILENO, buf, sizeof buf); });
    if (n < 0) throw_errno("cannot read the domain XML from stdin");
    if (n == 0) break;
    if (xml.size() + static_cast<std::size_t>(n) > kMaxDomainXmlBytes)
      throw Error("the domain XML is larger than " + std::to_string(kMaxDomainXmlBytes) + " bytes");
    xml.append(buf, static_cast<std::size_t>(n));
  }
  return xml;
}

Plan gather_and_plan(Gathered& g, const GatherOptions& options) {
  gather(g, options);
  return make_plan(g.inputs);
}

}  // namespace sockhook
