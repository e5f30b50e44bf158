// Status and StatusOr for every fallible call in Cairn.
//
// Cairn uses Abseil's absl::Status / absl::StatusOr (the same types gRPC uses)
// and never lets exceptions cross a module boundary. Codes are chosen by what
// the caller should do:
//   InvalidArgument   the caller sent something malformed; do not retry.
//   NotFound          an id, file or key that does not exist.
//   AlreadyExists     a create that collides with an existing object.
//   DataLoss          stored bytes are damaged (bad CRC, bad tag, truncated).
//   FailedPrecondition the store or object is in the wrong state (locked,
//                     wrong key, ...); fix the state, then retry.
//   ResourceExhausted disk full or a size limit.
//   Unimplemented     a feature that does not exist yet; never fake success.
//   Internal / Unknown a bug or an unexpected OS error.
#ifndef CAIRN_COMMON_STATUS_H_
#define CAIRN_COMMON_STATUS_H_

#include <cerrno>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn {

using Status = absl::Status;
template <typename T>
using StatusOr = absl::StatusOr<T>;

// Maps an errno value from a failed system call on `context` (usually a path)
// to a Status with a code the caller can act on (ENOENT -> NotFound, ENOSPC ->
// ResourceExhausted, EACCES -> PermissionDenied, ...).
Status ErrnoToStatus(int err, std::string_view op, std::string_view context);

}  // namespace cairn

#define CAIRN_STATUS_CONCAT_INNER_(a, b) a##b
#define CAIRN_STATUS_CONCAT_(a, b) CAIRN_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (a Status) is not OK.
#define CAIRN_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status _cairn_status = (expr);         \
    if (!_cairn_status.ok()) return _cairn_status; \
  } while (0)

// CAIRN_ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (a StatusOr<T>); on
// error returns its status, otherwise moves the value into `lhs`, which may be
// a declaration (`auto x`) or an existing variable.
#define CAIRN_ASSIGN_OR_RETURN(lhs, expr)                                   \
  CAIRN_ASSIGN_OR_RETURN_IMPL_(CAIRN_STATUS_CONCAT_(_cairn_sor_, __LINE__), \
                               lhs, expr)
#define CAIRN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()

#endif  // CAIRN_COMMON_STATUS_H_
