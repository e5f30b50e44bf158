#include "common/status.h"

#include <cstring>

#include "common/strings.h"

namespace cairn {

Status ErrnoToStatus(int err, std::string_view op, std::string_view context) {
  std::string msg = StrCat(op, " ", context, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case EFBIG:
      return absl::ResourceExhaustedError(msg);
    case EINVAL:
    case ENAMETOOLONG:
      return absl::InvalidArgumentError(msg);
    case EIO:
      return absl::DataLossError(msg);
    case EAGAIN:
    case EINTR:
    case EBUSY:
      return absl::UnavailableError(msg);
    default:
      return absl::UnknownError(msg);
  }
}

}  // namespace cairn
