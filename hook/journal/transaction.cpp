#include "journal/transaction.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "base/error.hpp"
#include "journal/lock.hpp"
#include "sys/root_dir.hpp"

namespace sockhook {

std::size_t Transaction::record(Effect entry) {
  journal_.entries.push_back(std::move(entry));
  store_.save(journal_);
  return journal_.entries.size() - 1;
}

void Transaction::update(std::size_t index, Effect entry) {
  journal_.entries.at(index) = std::move(entry);
  store_.save(journal_);
}

std::string SocketRun::name_in_lend_dir(const std::string& path, const std::string& what) const {
  if (!lend_dir || dir_name(path) != lend_dir_path)
    throw Error(what + ": " + path + " is not in the lend directory " + lend_dir_path);
  return base_name(path);
}

void run_step(SocketRun& run, const VerifySource& step) {
  // The wait counts from the run's start: the sockets of one domain wait side by side.
  run.spec =
      SourceSpec{step.runtime_dir, step.relative, step.owner, step.wait_seconds, run.ctx.started};
  auto path = (step.runtime_dir == "/" ? "" : step.runtime_dir) + "/" + step.relative;
  run.source =
      in_context("cannot " + run.verb + " " + path, [&] { return resolve_source(run.spec); });
}

std::vector<std::size_t> undo_order(const std::vector<Effect>& entries,
                                    const std::optional<std::string>& socket, std::size_t mark) {
  std::vector<std::size_t> order;
  for (auto i = entries.size(); i-- > 0;)
    if (!socket || (i >= mark && base_of(entries[i]).socket == *socket)) order.push_back(i);
  return order;
}

}  // namespace sockhook
