#include "common/file_publish.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "common/strings.h"

namespace cairn {

Status SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open", dir);
  Status s;
  if (::fsync(fd) != 0) s = ErrnoToStatus(errno, "fsync", dir);
  ::close(fd);
  return s;
}

Status SyncFile(const std::string& path, bool make_private) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoToStatus(errno, "open", path);
  Status s;
  if (make_private && ::fchmod(fd, 0600) != 0) {
    s = ErrnoToStatus(errno, "fchmod", path);
  } else if (::fsync(fd) != 0) {
    s = ErrnoToStatus(errno, "fsync", path);
  }
  ::close(fd);
  return s;
}

Status MoveIntoPlace(const std::string& from, const std::string& to,
                     bool overwrite) {
  if (overwrite) {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoToStatus(errno, "rename to", to);
    }
    return absl::OkStatus();
  }
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(),
                  RENAME_NOREPLACE) == 0) {
    return absl::OkStatus();
  }
  int err = errno;
  if (err == EINVAL || err == ENOSYS) {
    if (::link(from.c_str(), to.c_str()) == 0) {
      ::unlink(from.c_str());
      return absl::OkStatus();
    }
    err = errno;
  }
  if (err == EEXIST) {
    return absl::AlreadyExistsError(
        StrCat(to, " was created meanwhile; it is not replaced"));
  }
  return ErrnoToStatus(err, "rename to", to);
}

Status PublishFile(const std::string& from, const std::string& to,
                   bool overwrite) {
  CAIRN_RETURN_IF_ERROR(MoveIntoPlace(from, to, overwrite));
  std::string dir = std::filesystem::path(to).parent_path().string();
  return SyncDirectory(dir.empty() ? "." : dir);
}

}  // namespace cairn
