// ChildProcess: one spawned program that this process owns until it is
// reaped, plus RunCommand for short helper commands.
//
// The child runs in its own process group (so a terminal's Ctrl-C does not
// reach it and it never shares a group with the test runner). It is waited
// for through a pidfd, so waiting is an event wait with a deadline, never a
// sleep loop. Kill() signals only the child's own pid. The destructor kills
// the child if it still runs and always reaps it: no zombies, no orphans.
//
// Thread-compatible: one thread uses a ChildProcess at a time. (Used by the
// boot checks under tests/boot and by the restore builder for qemu-img.)
#ifndef CAIRN_COMMON_SUBPROCESS_H_
#define CAIRN_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cairn {

struct SpawnOptions {
  // Where the child's stdout and stderr go (created/truncated). Empty means
  // /dev/null. Its stdin is always /dev/null.
  std::string stdout_path;
  std::string stderr_path;
};

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  bool timed_out = false;
  std::string output;  // stdout and stderr interleaved (capped at 1 MiB)
};

class ChildProcess {
 public:
  // Starts argv[0] (looked up in PATH) with argv. Errors: InvalidArgument
  // for an empty argv, NotFound/Internal when the program cannot start.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(
      const std::vector<std::string>& argv, const SpawnOptions& options);

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Kills (SIGKILL) the child if it has not been reaped, then reaps it.
  ~ChildProcess();

  pid_t pid() const { return pid_; }

  // Waits until the child exits or `deadline` passes, whichever is first.
  // Returns the exit status (as from waitpid: use WIFEXITED etc.) once the
  // child has exited and been reaped, nullopt if it still runs at the
  // deadline. Passing absl::Now() polls without blocking.
  std::optional<int> WaitUntil(absl::Time deadline);

  // Sends SIGTERM, waits up to `grace`, then SIGKILL; reaps the child.
  // Returns its wait status. Idempotent.
  int Terminate(absl::Duration grace);

 private:
  friend absl::StatusOr<CommandResult> RunCommand(
      const std::vector<std::string>& argv, absl::Duration timeout);
  ChildProcess(pid_t pid, int pidfd) : pid_(pid), pidfd_(pidfd) {}
  std::optional<int> Reap(bool block);

  pid_t pid_;
  int pidfd_;
  std::optional<int> status_;
};

// Runs a short command to completion, capturing its output, killing it at
// `timeout`. Returns an error only if it could not be started; a non-zero
// exit or a timeout is reported in CommandResult.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout);

// The last `max_bytes` of a child's log file (stdout_path/stderr_path),
// without trailing blank space; "" if it cannot be read. For error messages.
std::string ReadLogTail(const std::string& path, size_t max_bytes);

}  // namespace cairn

#endif  // CAIRN_COMMON_SUBPROCESS_H_
