#pragma once

#include <string>

namespace sockhook {

/// Opens syslog with the identifier "sockhook". Hook mode logs only there.
void log_open();
/// Logs at LOG_INFO.
void log_info(const std::string& msg);
/// Logs at LOG_WARNING.
void log_warning(const std::string& msg);
/// Logs at LOG_ERR.
void log_error(const std::string& msg);

/// The command line's one line for a failure, on stderr: "sockhook: error: LINE".
void print_error(const std::string& line);

}  // namespace sockhook
