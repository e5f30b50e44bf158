// Small pieces every place that starts a helper process needs (nbdkit for
// NBD exports, nbdfuse for browse mounts): an owning descriptor, moving a
// descriptor out of the way of the child's dup2() targets, finding a program
// on $PATH with an install hint, and describing a wait status.
//
// Thread safety: every function is thread-safe; UniqueFd is not shared.
#ifndef CAIRN_COMMON_PROCESS_UTIL_H_
#define CAIRN_COMMON_PROCESS_UTIL_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn {

// Closes a descriptor when it goes out of scope.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  // Gives up ownership.
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1);

 private:
  int fd_;
};

// Moves `fd` to a close-on-exec descriptor >= `min_fd`, closing the old one
// (also on error). `what` names it in errors.
StatusOr<int> MoveFdAtOrAbove(int fd, int min_fd, std::string_view what);

// `path` made absolute against the current directory.
StatusOr<std::string> AbsolutePath(const std::string& path);

// A regular file this process may execute.
bool IsExecutableFile(const std::string& path);

// `configured` if set (NotFound unless it is an executable file), else
// `name` on $PATH (default /usr/local/bin:/usr/bin:/bin). NotFound says to
// install Debian package `package`.
StatusOr<std::string> FindProgram(const std::string& configured,
                                  std::string_view name,
                                  std::string_view package);

// "exited with status 1", "was killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

}  // namespace cairn

#endif  // CAIRN_COMMON_PROCESS_UTIL_H_
