#include "subprocess.h"

#include <sys/wait.h>

#include "absl/strings/str_cat.h"

namespace cairn::boot {

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("status ", status);
}

}  // namespace cairn::boot
