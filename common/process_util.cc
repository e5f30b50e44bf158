#include "common/process_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/env.h"
#include "common/strings.h"

namespace cairn {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

StatusOr<int> MoveFdAtOrAbove(int fd, int min_fd, std::string_view what) {
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, min_fd);
  int err = errno;
  ::close(fd);
  if (high < 0) return ErrnoToStatus(err, "fcntl(F_DUPFD_CLOEXEC)", what);
  return high;
}

StatusOr<std::string> AbsolutePath(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[4096];
  if (::getcwd(cwd, sizeof(cwd)) == nullptr) {
    return ErrnoToStatus(errno, "getcwd", path);
  }
  return JoinPath(cwd, path);
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

StatusOr<std::string> FindProgram(const std::string& configured,
                                  std::string_view name,
                                  std::string_view package) {
  if (!configured.empty()) {
    if (IsExecutableFile(configured)) return configured;
    return absl::NotFoundError(
        StrCat(name, " not found at ", configured, " (not an executable)"));
  }
  const char* path_env = ::getenv("PATH");
  std::string_view rest =
      path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    size_t colon = rest.find(':');
    std::string_view dir = rest.substr(0, colon);
    if (!dir.empty()) {
      std::string candidate = JoinPath(dir, name);
      if (IsExecutableFile(candidate)) return candidate;
    }
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return absl::NotFoundError(StrCat(name, " not found on $PATH: install the '",
                                    package, "' package (Debian: apt-get ",
                                    "install ", package, ")"));
}

std::string DescribeWaitStatus(int ws) {
  if (WIFEXITED(ws)) return StrCat("exited with status ", WEXITSTATUS(ws));
  if (WIFSIGNALED(ws)) {
    return StrCat("was killed by signal ", WTERMSIG(ws), " (",
                  ::strsignal(WTERMSIG(ws)), ")");
  }
  return StrCat("stopped (wait status ", ws, ")");
}

}  // namespace cairn
