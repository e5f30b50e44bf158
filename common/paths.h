// Checks of paths that name a place on a machine (a restore destination),
// shared by cairnctl, the storage manager and the agent so all three refuse
// the same paths with the same words.
//
// Thread safety: pure functions.
#ifndef CAIRN_COMMON_PATHS_H_
#define CAIRN_COMMON_PATHS_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cairn {

inline constexpr size_t kMaxPathBytes = 4096;

// The components of the absolute `path`, without empty and "." ones
// ("/srv//data/./x/" -> {"srv", "data", "x"}; "/" -> {}). InvalidArgument,
// starting with `what`, if `path` is relative, longer than kMaxPathBytes,
// contains NUL, or has a ".." component ("path traversal").
StatusOr<std::vector<std::string>> SplitAbsolutePath(std::string_view path,
                                                     std::string_view what);

// "/" followed by the first `n` of `parts` joined with '/' ("/" for n == 0).
std::string JoinAbsolutePath(const std::vector<std::string>& parts, size_t n);

}  // namespace cairn

#endif  // CAIRN_COMMON_PATHS_H_
