#include "common/paths.h"

#include "common/strings.h"

namespace cairn {

StatusOr<std::vector<std::string>> SplitAbsolutePath(std::string_view path,
                                                     std::string_view what) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        StrCat(what, " '", path.substr(0, 256),
               "' must be absolute (start with '/')"));
  }
  if (path.size() > kMaxPathBytes ||
      path.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat(what, " must be at most ", kMaxPathBytes, " bytes without NUL"));
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part == "..") {
      return absl::InvalidArgumentError(
          StrCat(what, " '", path.substr(0, 256),
                 "' has a '..' component (path traversal)"));
    }
    if (!part.empty() && part != ".") parts.emplace_back(part);
    start = end + 1;
  }
  return parts;
}

std::string JoinAbsolutePath(const std::vector<std::string>& parts, size_t n) {
  if (n == 0) return "/";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += '/';
    out += parts[i];
  }
  return out;
}

}  // namespace cairn
