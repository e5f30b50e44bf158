// The boot checks' names for the process helpers in common/subprocess.h,
// plus DescribeWaitStatus in the form the boot reports use.
#ifndef CAIRN_TESTS_BOOT_SUBPROCESS_H_
#define CAIRN_TESTS_BOOT_SUBPROCESS_H_

#include <string>

#include "common/subprocess.h"

namespace cairn::boot {

using ::cairn::ChildProcess;
using ::cairn::CommandResult;
using ::cairn::RunCommand;
using ::cairn::SpawnOptions;

// Human-readable form of a wait status: "exit 0", "signal 9".
std::string DescribeWaitStatus(int status);

}  // namespace cairn::boot

#endif  // CAIRN_TESTS_BOOT_SUBPROCESS_H_
