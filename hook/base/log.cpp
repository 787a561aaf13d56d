#include "base/log.hpp"

#include <syslog.h>

#include <cstdio>

namespace sockhook {

void log_open() { ::openlog("sockhook", LOG_PID, LOG_DAEMON); }

void log_info(const std::string& msg) { ::syslog(LOG_INFO, "%s", msg.c_str()); }

void log_warning(const std::string& msg) { ::syslog(LOG_WARNING, "%s", msg.c_str()); }

void log_error(const std::string& msg) { ::syslog(LOG_ERR, "%s", msg.c_str()); }

void print_error(const std::string& line) {
  std::fprintf(stderr, "sockhook: error: %s\n", line.c_str());
}

}  // namespace sockhook
