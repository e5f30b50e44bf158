// Shared helpers for Cairn's command-line programs: exit codes, error
// printing (human or --json), and key-file options.
#ifndef CAIRN_COMMON_CLI_H_
#define CAIRN_COMMON_CLI_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/data_key.h"
#include "common/status.h"

namespace cairn::cli {

// Exit codes: 0 ok; 1 operation found problems (verify); 2 usage or invalid
// input; 3 not found; 4 data damaged; 5 precondition (locked, wrong key);
// 6 resources exhausted; 7 unavailable or timed out (retry later); 10
// internal or other errors.
int ExitCode(const Status& s);

// Prints `s` to stderr ("error: ...") or, with `json`, as
// {"error": {"code": "...", "message": "..."}} to stdout. Returns ExitCode(s).
int ReportError(const Status& s, bool json);

// Loads a key file if `path` is non-empty; nullptr otherwise.
StatusOr<std::unique_ptr<DataKey>> LoadOptionalKey(const std::string& path);

// Prints `j` (pretty) to stdout.
void PrintJson(const nlohmann::json& j);

// "2026-11-22T05:30:00Z" from microseconds since the epoch.
std::string FormatTimestamp(int64_t unix_us);

}  // namespace cairn::cli

#endif  // CAIRN_COMMON_CLI_H_
