#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/env.h"

extern char** environ;

namespace cairn {
namespace {

absl::Status ErrnoError(int err, std::string_view what) {
  std::string msg = absl::StrCat(std::string(what), ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

int PidfdOpen(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

// Milliseconds from now until `deadline`, clamped to [0, 1000] so a wait
// never overshoots by much and an infinite deadline still wakes up.
int PollMillis(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  int64_t ms = absl::ToInt64Milliseconds(left) + 1;
  return static_cast<int>(ms > 1000 ? 1000 : ms);
}

class SpawnAttrs {
 public:
  SpawnAttrs() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
  }
  ~SpawnAttrs() {
    posix_spawnattr_destroy(&attr_);
    posix_spawn_file_actions_destroy(&actions_);
  }
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

absl::StatusOr<pid_t> SpawnRaw(const std::vector<std::string>& argv,
                               SpawnAttrs& sa) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  // Own process group; default signal dispositions and an empty mask, so a
  // test runner's blocked or ignored signals do not leak into the child.
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setpgroup(&sa.attr_, 0);
  posix_spawnattr_setsigdefault(&sa.attr_, &all);
  posix_spawnattr_setsigmask(&sa.attr_, &none);
  posix_spawnattr_setflags(&sa.attr_, POSIX_SPAWN_SETPGROUP |
                                          POSIX_SPAWN_SETSIGDEF |
                                          POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const std::string& a : argv)
    cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, cargv[0], &sa.actions_, &sa.attr_, cargv.data(),
                        environ);
  if (rc != 0) return ErrnoError(rc, absl::StrCat("spawn ", argv[0]));
  return pid;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const std::vector<std::string>& argv, const SpawnOptions& options) {
  SpawnAttrs sa;
  posix_spawn_file_actions_addopen(&sa.actions_, 0, "/dev/null", O_RDONLY, 0);
  const std::string out =
      options.stdout_path.empty() ? "/dev/null" : options.stdout_path;
  const std::string err =
      options.stderr_path.empty() ? "/dev/null" : options.stderr_path;
  posix_spawn_file_actions_addopen(&sa.actions_, 1, out.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&sa.actions_, 2, err.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  absl::StatusOr<pid_t> pid = SpawnRaw(argv, sa);
  if (!pid.ok()) return pid.status();
  int pidfd = PidfdOpen(*pid);
  if (pidfd < 0) {
    int e = errno;
    kill(*pid, SIGKILL);
    int st;
    waitpid(*pid, &st, 0);
    return ErrnoError(e, "pidfd_open");
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(*pid, pidfd));
}

ChildProcess::~ChildProcess() {
  if (!status_.has_value()) {
    kill(pid_, SIGKILL);
    Reap(/*block=*/true);
  }
  if (pidfd_ >= 0) close(pidfd_);
}

std::optional<int> ChildProcess::Reap(bool block) {
  if (status_.has_value()) return status_;
  int st = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = st;
  return status_;
}

std::optional<int> ChildProcess::WaitUntil(absl::Time deadline) {
  while (true) {
    if (std::optional<int> st = Reap(/*block=*/false)) return st;
    int ms = PollMillis(deadline);
    if (ms == 0) return std::nullopt;
    pollfd pfd = {pidfd_, POLLIN, 0};
    int rc = poll(&pfd, 1, ms);
    if (rc < 0 && errno != EINTR) return Reap(/*block=*/false);
  }
}

int ChildProcess::Terminate(absl::Duration grace) {
  if (status_.has_value()) return *status_;
  kill(pid_, SIGTERM);
  if (std::optional<int> st = WaitUntil(absl::Now() + grace)) return *st;
  kill(pid_, SIGKILL);
  return *Reap(/*block=*/true);
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2");
  SpawnAttrs sa;
  posix_spawn_file_actions_addopen(&sa.actions_, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&sa.actions_, fds[1], 1);
  posix_spawn_file_actions_adddup2(&sa.actions_, fds[1], 2);
  absl::StatusOr<pid_t> pid = SpawnRaw(argv, sa);
  close(fds[1]);
  if (!pid.ok()) {
    close(fds[0]);
    return pid.status();
  }
  int pidfd = PidfdOpen(*pid);
  if (pidfd < 0) {
    int e = errno;
    kill(*pid, SIGKILL);
    int st;
    waitpid(*pid, &st, 0);
    close(fds[0]);
    return ErrnoError(e, "pidfd_open");
  }
  ChildProcess child(*pid, pidfd);

  CommandResult result;
  const absl::Time deadline = absl::Now() + timeout;
  bool eof = false;
  char buf[8192];
  while (!eof) {
    int ms = PollMillis(deadline);
    if (ms == 0) {
      result.timed_out = true;
      break;
    }
    pollfd pfd = {fds[0], POLLIN, 0};
    int rc = poll(&pfd, 1, ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (rc == 0) continue;
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof = true;
    } else if (result.output.size() < (1u << 20)) {
      result.output.append(buf, static_cast<size_t>(n));
    }
  }
  close(fds[0]);
  int status;
  if (result.timed_out) {
    status = child.Terminate(absl::Seconds(2));
  } else {
    std::optional<int> st = child.WaitUntil(deadline);
    if (st.has_value()) {
      status = *st;
    } else {
      result.timed_out = true;
      status = child.Terminate(absl::Seconds(2));
    }
  }
  if (!result.timed_out && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

std::string ReadLogTail(const std::string& path, size_t max_bytes) {
  std::string text;
  if (!Env::Default()->ReadFileToString(path, &text).ok()) return "";
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  while (!text.empty() &&
         (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

}  // namespace cairn
