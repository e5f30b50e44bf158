#include "common/cli.h"

#include <cstdio>
#include <iostream>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace cairn::cli {

int ExitCode(const Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
      return 2;
    case absl::StatusCode::kNotFound:
      return 3;
    case absl::StatusCode::kDataLoss:
      return 4;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return 5;
    case absl::StatusCode::kResourceExhausted:
      return 6;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 7;
    default:
      return 10;
  }
}

int ReportError(const Status& s, bool json) {
  if (json) {
    PrintJson({{"error",
                {{"code", absl::StatusCodeToString(s.code())},
                 {"message", std::string(s.message())}}}});
  } else {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
  }
  return ExitCode(s);
}

StatusOr<std::unique_ptr<DataKey>> LoadOptionalKey(const std::string& path) {
  if (path.empty()) return std::unique_ptr<DataKey>();
  CAIRN_ASSIGN_OR_RETURN(DataKey key, DataKey::LoadFromFile(path));
  return std::make_unique<DataKey>(std::move(key));
}

void PrintJson(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

std::string FormatTimestamp(int64_t unix_us) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMicros(unix_us),
                          absl::UTCTimeZone());
}

}  // namespace cairn::cli
