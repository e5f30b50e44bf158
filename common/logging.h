// Logging setup for every Cairn binary: spdlog to stderr, with a level from
// the command line or config ("trace", "debug", "info", "warn", "error").
#ifndef CAIRN_COMMON_LOGGING_H_
#define CAIRN_COMMON_LOGGING_H_

#include <string_view>

#include "common/status.h"

namespace cairn {

// Installs the default stderr logger named after `program`. Safe to call
// more than once (the last call wins). InvalidArgument on an unknown level.
Status InitLogging(std::string_view program, std::string_view level);

}  // namespace cairn

#endif  // CAIRN_COMMON_LOGGING_H_
