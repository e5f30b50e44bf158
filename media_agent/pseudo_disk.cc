#include "media_agent/pseudo_disk.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <functional>
#include <thread>

#include "common/env.h"
#include "common/process_util.h"
#include "common/strings.h"

extern char** environ;

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

// Descriptors handed to a child are moved at or above this number first, so
// the dup2() calls onto 0-3 in the child never clobber one another.
constexpr int kHighFd = 10;
constexpr int kExecStatusFd = 3;

constexpr unsigned long kMountFlags =
    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME;

// How long Detach() gives each stage before it forces the next one. With a
// mount(2) left hanging the FUSE file is known to stay busy, so the retries
// are short then.
constexpr int kFuseUnmountRetryMs = 5000;
constexpr int kFuseUnmountRetryWhenHungMs = 500;
constexpr int kProcessExitWaitMs = 5000;
constexpr int kProcessExitWaitWhenHungMs = 1000;

void Note(Status* result, Status s) {
  if (result->ok() && !s.ok()) *result = std::move(s);
}

void SleepMs(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// Moves `fd` to a close-on-exec descriptor >= kHighFd (closing the old one).
StatusOr<int> MoveHigh(int fd, std::string_view what) {
  return MoveFdAtOrAbove(fd, kHighFd, what);
}

// waitpid(pid) for up to `timeout_ms` (0: just look). True once reaped.
bool WaitForExit(pid_t pid, int* wait_status, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int sleep_ms = 1;
  while (true) {
    pid_t r = ::waitpid(pid, wait_status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno == ECHILD) {
      *wait_status = 0;
      return true;
    }
    if (r < 0 && errno == EINTR) continue;
    if (Clock::now() >= deadline) return false;
    SleepMs(sleep_ms);
    sleep_ms = std::min(sleep_ms * 2, 20);
  }
}

// fork/exec of args[0] (an absolute path) with stdin from /dev/null, stdout
// and stderr into `out_fd`, no other descriptor, default signal handling and
// (with `die_with_parent`) PR_SET_PDEATHSIG SIGTERM. Returns once exec
// succeeded. `out_fd` stays owned by the caller.
StatusOr<pid_t> Spawn(const std::vector<std::string>& args, int out_fd,
                      bool die_with_parent) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);

  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (raw < 0) return ErrnoToStatus(errno, "open", "/dev/null");
  CAIRN_ASSIGN_OR_RETURN(int null_high, MoveHigh(raw, "/dev/null"));
  UniqueFd null_fd(null_high);
  int dup_out = ::fcntl(out_fd, F_DUPFD_CLOEXEC, kHighFd);
  if (dup_out < 0) return ErrnoToStatus(errno, "fcntl", "child output");
  UniqueFd out(dup_out);
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    return ErrnoToStatus(errno, "pipe", "exec status");
  }
  UniqueFd status_read(status_pipe[0]);
  CAIRN_ASSIGN_OR_RETURN(int status_high,
                         MoveHigh(status_pipe[1], "exec status pipe"));
  UniqueFd status_write(status_high);
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork", args[0]);
  if (pid == 0) {
    // Child of a multi-threaded process: async-signal-safe calls only.
    if (die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) signal(sig, SIG_DFL);
    bool ok = ::dup2(null_fd.get(), 0) >= 0 && ::dup2(out.get(), 1) >= 0 &&
              ::dup2(out.get(), 2) >= 0 &&
              ::dup3(status_write.get(), kExecStatusFd, O_CLOEXEC) >= 0;
    ::close_range(kExecStatusFd + 1, ~0U, 0);
    if (ok) ::execve(argv[0], argv.data(), environ);
    int err = errno;
    ssize_t ignored = ::write(kExecStatusFd, &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }
  null_fd.Reset();
  out.Reset();
  status_write.Reset();
  int exec_errno = 0;
  ssize_t got;
  do {
    got = ::read(status_read.get(), &exec_errno, sizeof(exec_errno));
  } while (got < 0 && errno == EINTR);
  if (got == sizeof(exec_errno)) {
    int ws;
    while (::waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    return ErrnoToStatus(exec_errno, "exec", args[0]);
  }
  return pid;
}

struct RunResult {
  bool finished = false;  // false: killed after the timeout
  int wait_status = 0;
  std::string output;
  bool Succeeded() const {
    return finished && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
  }
};

// Runs a short-lived program (fusermount3) to completion; SIGKILL after
// `timeout_ms`.
StatusOr<RunResult> RunProgram(const std::vector<std::string>& args,
                               int timeout_ms) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    return ErrnoToStatus(errno, "pipe", args[0]);
  }
  UniqueFd read_end(p[0]);
  UniqueFd write_end(p[1]);
  CAIRN_ASSIGN_OR_RETURN(
      pid_t pid, Spawn(args, write_end.get(), /*die_with_parent=*/true));
  write_end.Reset();
  ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
  RunResult result;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[1024];
  while (true) {
    ssize_t n = ::read(read_end.get(), buf, sizeof(buf));
    if (n > 0) {
      if (result.output.size() < 4096) result.output.append(buf, n);
      continue;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
    if (Clock::now() >= deadline) break;
    SleepMs(5);
  }
  int ws = 0;
  int remaining =
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                           deadline - Clock::now())
                           .count());
  if (WaitForExit(pid, &ws, std::max(remaining, 0))) {
    result.finished = true;
    result.wait_status = ws;
  } else {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
  }
  while (!result.output.empty() &&
         (result.output.back() == '\n' || result.output.back() == ' ')) {
    result.output.pop_back();
  }
  return result;
}

// Reads a whole file until end of file (not up to its stat size, which is 0
// for /proc files). At most 16 MiB.
bool ReadSmallFile(const std::string& path, std::string* out) {
  out->clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[8192];
  while (out->size() < (16u << 20)) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

std::string FileTail(const std::string& path) {
  std::string text;
  ReadSmallFile(path, &text);
  if (text.size() > 2000) text = text.substr(text.size() - 2000);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

// /proc/self/mountinfo escapes ' ', '\t', '\n' and '\\' as \ooo.
std::string UnescapeMountField(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && field[i + 1] >= '0' &&
        field[i + 1] <= '3') {
      int v = (field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
              (field[i + 3] - '0');
      out.push_back(static_cast<char>(v));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

struct MountEntry {
  std::string mount_point;
  std::string fs_type;
};

// The mounts of this process's namespace at or below `dir` (absolute, no
// trailing slash), in mountinfo order.
std::vector<MountEntry> MountsUnder(const std::string& dir, bool include_dir) {
  std::vector<MountEntry> out;
  std::string text;
  if (!ReadSmallFile("/proc/self/mountinfo", &text)) return out;
  for (std::string_view line : SplitLines(text)) {
    // id parent maj:min root mount-point options [optional...] - type src ...
    std::vector<std::string_view> fields;
    size_t pos = 0;
    while (pos <= line.size()) {
      size_t sp = line.find(' ', pos);
      if (sp == std::string_view::npos) sp = line.size();
      fields.push_back(line.substr(pos, sp - pos));
      pos = sp + 1;
    }
    if (fields.size() < 7) continue;
    MountEntry e;
    e.mount_point = UnescapeMountField(fields[4]);
    for (size_t i = 6; i + 1 < fields.size(); ++i) {
      if (fields[i] == "-") {
        e.fs_type = std::string(fields[i + 1]);
        break;
      }
    }
    bool below = e.mount_point.size() > dir.size() &&
                 e.mount_point.compare(0, dir.size(), dir) == 0 &&
                 e.mount_point[dir.size()] == '/';
    if (below || (include_dir && e.mount_point == dir)) {
      out.push_back(std::move(e));
    }
  }
  return out;
}

bool IsMountPoint(const std::string& path) {
  for (const MountEntry& e : MountsUnder(path, /*include_dir=*/true)) {
    if (e.mount_point == path) return true;
  }
  return false;
}

size_t Depth(const std::string& path) {
  return static_cast<size_t>(std::count(path.begin(), path.end(), '/'));
}

// Creates `dir` with mode 0700, or accepts an existing empty directory of
// ours (made 0700).
Status CreatePrivateDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return absl::OkStatus();
  if (errno != EEXIST) return ErrnoToStatus(errno, "mkdir", dir);
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return ErrnoToStatus(errno, "lstat", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        StrCat(dir,
               " exists and is not a directory (symbolic links are "
               "refused)"));
  }
  if (st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(
        StrCat(dir, " belongs to uid ", st.st_uid, ", not to this user"));
  }
  auto children = Env::Default()->GetChildren(dir);
  if (!children.ok()) return children.status();
  if (!children->empty()) {
    return absl::FailedPreconditionError(
        StrCat(dir,
               " is not empty; a pseudo-disk needs a directory of its "
               "own"));
  }
  if (::chmod(dir.c_str(), 0700) != 0) {
    return ErrnoToStatus(errno, "chmod", dir);
  }
  return absl::OkStatus();
}

// ---- Loop devices -----------------------------------------------------------
//
// Set up by hand with ioctl(2): no installed library offers it (util-linux's
// loop-device code is private to losetup and libmount, and libmount only
// sets loops up as part of a mount, without the timeout control we need).

struct LoopDevice {
  int fd = -1;  // open on the loop device; closing the last one releases it
  std::string path;
};

void ReleaseLoop(LoopDevice* loop) {
  if (loop->fd < 0) return;
  ::ioctl(loop->fd, LOOP_CLR_FD, 0);  // AUTOCLEAR would do it on close too
  ::close(loop->fd);
  loop->fd = -1;
}

// A free loop device showing bytes [offset, offset + size) of `backing_fd`,
// read-only, released automatically when its last user closes it.
StatusOr<LoopDevice> AttachLoop(int backing_fd, const std::string& backing_name,
                                uint64_t offset, uint64_t size) {
  UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (control.get() < 0) {
    return ErrnoToStatus(errno, "open", "/dev/loop-control");
  }
  loop_info64 info;
  std::memset(&info, 0, sizeof(info));
  info.lo_offset = offset;
  info.lo_sizelimit = size;
  info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
  std::strncpy(reinterpret_cast<char*>(info.lo_file_name), backing_name.c_str(),
               LO_NAME_SIZE - 1);
  Status last = absl::UnavailableError("no loop device could be claimed");
  // Another process may claim the device LOOP_CTL_GET_FREE named before we
  // configure it (EBUSY): ask again.
  for (int attempt = 0; attempt < 50; ++attempt) {
    int number = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (number < 0) {
      return ErrnoToStatus(errno, "ioctl(LOOP_CTL_GET_FREE)",
                           "/dev/loop-control");
    }
    std::string path = StrCat("/dev/loop", number);
    UniqueFd dev(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (dev.get() < 0) {
      last = ErrnoToStatus(errno, "open", path);
      if (errno == ENOENT) {  // the node is not there yet
        SleepMs(10);
        continue;
      }
      return last;
    }
    loop_config config;
    std::memset(&config, 0, sizeof(config));
    config.fd = static_cast<uint32_t>(backing_fd);
    config.info = info;
    if (::ioctl(dev.get(), LOOP_CONFIGURE, &config) == 0) {
      return LoopDevice{dev.Release(), path};
    }
    int err = errno;
    if (err == EBUSY) {
      last = ErrnoToStatus(err, "ioctl(LOOP_CONFIGURE)", path);
      continue;
    }
    if (err != EINVAL && err != ENOTTY) {
      return ErrnoToStatus(err, "ioctl(LOOP_CONFIGURE)", path);
    }
    // Kernels before 5.8: LOOP_SET_FD (read-only because the backing file
    // is open read-only), then LOOP_SET_STATUS64.
    if (::ioctl(dev.get(), LOOP_SET_FD, backing_fd) != 0) {
      err = errno;
      last = ErrnoToStatus(err, "ioctl(LOOP_SET_FD)", path);
      if (err == EBUSY) continue;
      return last;
    }
    if (::ioctl(dev.get(), LOOP_SET_STATUS64, &info) != 0) {
      err = errno;
      ::ioctl(dev.get(), LOOP_CLR_FD, 0);
      last = ErrnoToStatus(err, "ioctl(LOOP_SET_STATUS64)", path);
      if (err == EBUSY || err == EAGAIN) continue;
      return last;
    }
    return LoopDevice{dev.Release(), path};
  }
  return last;
}

// ---- Mounting ---------------------------------------------------------------

struct MountAttempt {
  std::string type;
  std::string data;  // file-system specific options
};

// How to mount `fs_type` without any write to the image, or why not.
StatusOr<std::vector<MountAttempt>> PlanMount(const PartitionInfo& p) {
  const std::string& t = p.fs_type;
  std::string desc = DescribePartition(p);
  if (t == "ext4") return std::vector<MountAttempt>{{"ext4", "noload"}};
  if (t == "ext3") {
    return std::vector<MountAttempt>{{"ext3", "noload"}, {"ext4", "noload"}};
  }
  if (t == "ext2") return std::vector<MountAttempt>{{"ext2", ""}, {"ext4", ""}};
  if (t == "xfs") return std::vector<MountAttempt>{{"xfs", "norecovery"}};
  if (t == "btrfs") {
    return std::vector<MountAttempt>{{"btrfs", "rescue=nologreplay"},
                                     {"btrfs", "nologreplay"}};
  }
  if (t == "vfat") return std::vector<MountAttempt>{{"vfat", ""}};
  if (t == "swap") {
    return absl::FailedPreconditionError(
        StrCat(desc, ": skipped: swap space holds no files"));
  }
  if (t == "LVM2_member") {
    if (::access("/dev/mapper/control", F_OK) != 0) {
      return absl::FailedPreconditionError(StrCat(
          desc,
          ": skipped: LVM physical volume; device-mapper is not available "
          "(/dev/mapper/control is missing)"));
    }
    return absl::UnimplementedError(
        StrCat(desc,
               ": skipped: LVM physical volume; activating its logical "
               "volumes is not implemented by the pseudo-disk"));
  }
  if (t.empty()) {
    if (!p.probe_error.empty()) {
      return absl::FailedPreconditionError(
          StrCat(desc, ": skipped: cannot probe it: ", p.probe_error));
    }
    return absl::FailedPreconditionError(
        StrCat(desc, ": skipped: no file system recognised"));
  }
  return absl::UnimplementedError(
      StrCat(desc, ": skipped: mounting ", t,
             " is not implemented by the "
             "pseudo-disk (it mounts ext2/3/4, xfs, btrfs and vfat)"));
}

struct MountOutcome {
  enum Kind { kMounted, kFailed, kTimedOut } kind = kFailed;
  int err = 0;     // kFailed: mount(2)'s errno
  pid_t pid = -1;  // kTimedOut: the child left behind
};

// mount(2) in a forked child, waited for up to `timeout_ms`.
MountOutcome MountInChild(const std::string& source, const std::string& target,
                          const MountAttempt& attempt, int timeout_ms) {
  const char* src = source.c_str();
  const char* dst = target.c_str();
  const char* type = attempt.type.c_str();
  const void* data = attempt.data.empty() ? nullptr : attempt.data.c_str();
  MountOutcome out;
  pid_t pid = ::fork();
  if (pid < 0) {
    out.err = errno;
    return out;
  }
  if (pid == 0) {
    // Only the system call and _exit: this process is multi-threaded.
    int r = ::mount(src, dst, type, kMountFlags, data);
    int err = errno;
    ::_exit(r == 0 ? 0 : (err > 0 && err < 255 ? err : 255));
  }
  int ws = 0;
  if (!WaitForExit(pid, &ws, timeout_ms)) {
    out.kind = MountOutcome::kTimedOut;
    out.pid = pid;
    return out;
  }
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
    out.kind = MountOutcome::kMounted;
  } else {
    out.err = WIFEXITED(ws) ? WEXITSTATUS(ws) : EINTR;
  }
  return out;
}

Status MountError(const std::string& desc, const MountAttempt& attempt,
                  const std::string& loop, int err) {
  std::string what = StrCat(desc, ": mount(2) as ", attempt.type,
                            attempt.data.empty() ? "" : " -o ", attempt.data,
                            " from ", loop, " failed: ", std::strerror(err));
  switch (err) {
    case ENODEV:
      return absl::FailedPreconditionError(
          StrCat(what, " (the host kernel has no ", attempt.type,
                 " driver loaded, and it cannot be loaded here)"));
    case EINVAL:
    case EUCLEAN:
    case EBADMSG:
    case EIO:
    case EFBIG:
      return absl::DataLossError(
          StrCat(what, " (the file system is damaged or not a valid ",
                 attempt.type, ")"));
    default:
      return Status(ErrnoToStatus(err, "", "").code(), what);
  }
}

}  // namespace

// ---- PseudoDisk -------------------------------------------------------------

StatusOr<std::unique_ptr<PseudoDisk>> PseudoDisk::Attach(
    const PseudoDiskOptions& o) {
  if (o.nbd_uri.empty()) return absl::InvalidArgumentError("no NBD URI given");
  if (o.dir.empty()) {
    return absl::InvalidArgumentError("no pseudo-disk directory given");
  }
  if (o.timeout_ms <= 0) {
    return absl::InvalidArgumentError(
        StrCat("timeout_ms must be positive, got ", o.timeout_ms));
  }
  CAIRN_ASSIGN_OR_RETURN(std::string nbdfuse,
                         FindProgram(o.nbdfuse_path, "nbdfuse", "libnbd-bin"));
  CAIRN_ASSIGN_OR_RETURN(std::string fusermount,
                         FindProgram("", "fusermount3", "fuse3"));
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    return absl::FailedPreconditionError(
        StrCat("/dev/fuse is not usable (", std::strerror(errno),
               "): the pseudo-disk needs FUSE"));
  }
  if (o.mount && ::access("/dev/loop-control", R_OK | W_OK) != 0) {
    return absl::FailedPreconditionError(
        StrCat("/dev/loop-control is not usable (", std::strerror(errno),
               "): mounting the pseudo-disk needs loop devices (and root)"));
  }
  CAIRN_ASSIGN_OR_RETURN(std::string dir, AbsolutePath(o.dir));
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  CAIRN_RETURN_IF_ERROR(CreatePrivateDir(dir));

  std::unique_ptr<PseudoDisk> d(new PseudoDisk());
  d->dir_ = dir;
  d->fuse_dir_ = JoinPath(dir, "fuse");
  d->disk_path_ = JoinPath(d->fuse_dir_, "disk");
  d->nbdfuse_pid_file_ = JoinPath(dir, "nbdfuse.pid");
  d->nbdfuse_log_ = JoinPath(dir, "nbdfuse.log");
  d->fusermount_ = fusermount;
  d->timeout_ms_ = o.timeout_ms;
  d->attached_ = true;  // from here on Detach() undoes what exists

  Status started = d->StartNbdfuse(o, nbdfuse);
  if (!started.ok()) {
    d->Detach().IgnoreError();
    return started;
  }
  auto partitions = ProbePartitions(d->disk_path_);
  if (!partitions.ok()) {
    Status s(partitions.status().code(),
             StrCat("probing the disk of ", o.nbd_uri, ": ",
                    ToStd(partitions.status().message())));
    d->Detach().IgnoreError();
    return s;
  }
  // One descriptor on the disk file for every loop device, opened before
  // the first mount: once a mount hangs in the export, any new request to
  // the FUSE file (an open() too) may hang behind it, and this thread must
  // not.
  UniqueFd backing;
  if (o.mount) {
    backing.Reset(::open(d->disk_path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (backing.get() < 0) {
      Status s = ErrnoToStatus(errno, "open", d->disk_path_);
      d->Detach().IgnoreError();
      return s;
    }
  }
  for (const PartitionInfo& p : *partitions) {
    if (o.mount) {
      d->filesystems_.push_back(d->MountPartition(p, backing.get()));
    } else {
      MountedFileSystem m;
      m.partition = p;
      d->filesystems_.push_back(std::move(m));
    }
  }
  return d;
}

Status PseudoDisk::StartNbdfuse(const PseudoDiskOptions& o,
                                const std::string& nbdfuse) {
  if (::mkdir(fuse_dir_.c_str(), 0700) != 0) {
    return ErrnoToStatus(errno, "mkdir", fuse_dir_);
  }
  int raw = ::open(nbdfuse_log_.c_str(),
                   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (raw < 0) return ErrnoToStatus(errno, "open", nbdfuse_log_);
  UniqueFd log(raw);
  std::vector<std::string> args = {nbdfuse,           "--readonly", "-P",
                                   nbdfuse_pid_file_, disk_path_,   o.nbd_uri};
  CAIRN_ASSIGN_OR_RETURN(nbdfuse_pid_,
                         Spawn(args, log.get(), /*die_with_parent=*/true));
  log.Reset();

  // nbdfuse writes its pid file once the FUSE file system serves.
  auto deadline = Clock::now() + std::chrono::milliseconds(o.timeout_ms);
  while (true) {
    int ws = 0;
    if (WaitForExit(nbdfuse_pid_, &ws, 0)) {
      nbdfuse_pid_ = -1;
      std::string tail = FileTail(nbdfuse_log_);
      return absl::UnavailableError(
          StrCat("nbdfuse ", DescribeWaitStatus(ws), " before serving ",
                 o.nbd_uri, tail.empty() ? "" : "; it said: ", tail));
    }
    std::string pid_text;
    struct stat st;
    if (ReadSmallFile(nbdfuse_pid_file_, &pid_text) && !pid_text.empty() &&
        ::stat(disk_path_.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      size_ = static_cast<uint64_t>(st.st_size);
      return absl::OkStatus();
    }
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          StrCat("nbdfuse did not serve ", o.nbd_uri, " within ", o.timeout_ms,
                 " ms; it said: ", FileTail(nbdfuse_log_)));
    }
    SleepMs(10);
  }
}

MountedFileSystem PseudoDisk::MountPartition(const PartitionInfo& p,
                                             int backing_fd) {
  MountedFileSystem m;
  m.partition = p;
  std::string desc = DescribePartition(p);
  auto plan = PlanMount(p);
  if (!plan.ok()) {
    m.status = plan.status();
    return m;
  }
  std::string target = JoinPath(dir_, StrCat("p", p.number));
  if (::mkdir(target.c_str(), 0700) != 0) {
    Status s = ErrnoToStatus(errno, "mkdir", target);
    m.status = Status(s.code(), StrCat(desc, ": ", ToStd(s.message())));
    return m;
  }
  mount_dirs_.push_back(target);

  // The loop device takes its own reference to the file.
  auto loop = AttachLoop(backing_fd, disk_path_, p.offset, p.size);
  if (!loop.ok()) {
    m.status = Status(loop.status().code(),
                      StrCat(desc, ": cannot set up a loop device: ",
                             ToStd(loop.status().message())));
    return m;
  }
  Status first_error;
  for (const MountAttempt& attempt : *plan) {
    MountOutcome r = MountInChild(loop->path, target, attempt, timeout_ms_);
    if (r.kind == MountOutcome::kMounted) {
      m.mount_path = target;
      m.loop_device = loop->path;
      // The mount holds the device now; with AUTOCLEAR it is released when
      // the file system is unmounted.
      ::close(loop->fd);
      loop->fd = -1;
      return m;
    }
    if (r.kind == MountOutcome::kTimedOut) {
      pending_mounts_.push_back({r.pid, target});
      m.loop_device = loop->path;
      ::close(loop->fd);  // the child's open of the device keeps it bound
      loop->fd = -1;
      m.status = absl::DeadlineExceededError(
          StrCat(desc, ": mount(2) as ", attempt.type,
                 " did not return within ", timeout_ms_,
                 " ms (the file system or the NBD export hangs); "
                 "left behind as pid ",
                 r.pid, ", unmounted at Detach()"));
      return m;
    }
    Status s = MountError(desc, attempt, loop->path, r.err);
    // Keep the first error unless it only said "no such driver".
    if (first_error.ok() ||
        (first_error.code() == absl::StatusCode::kFailedPrecondition &&
         r.err != ENODEV)) {
      first_error = s;
    }
    if (r.err != ENODEV && r.err != EINVAL) break;  // the next won't help
  }
  ReleaseLoop(&*loop);
  m.status = first_error;
  return m;
}

PseudoDisk::~PseudoDisk() { Detach().IgnoreError(); }

void PseudoDisk::ReapPendingMounts(int wait_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(wait_ms);
  std::vector<PendingMount> still;
  for (const PendingMount& pm : pending_mounts_) {
    int remaining = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 Clock::now())
               .count()));
    int ws = 0;
    if (WaitForExit(pm.pid, &ws, remaining)) {
      if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
        ::umount2(pm.path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
      }
    } else {
      still.push_back(pm);
    }
  }
  pending_mounts_ = std::move(still);
}

Status PseudoDisk::StopNbdfuse() {
  Status result;
  if (nbdfuse_pid_ < 0) {
    // Never started, or exited by itself: a dead FUSE mount may remain.
    if (IsMountPoint(fuse_dir_)) {
      ::umount2(fuse_dir_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    }
    return result;
  }
  // The loop devices go (AUTOCLEAR) as their file systems are unmounted;
  // until then the FUSE file is busy, so fusermount3 is retried a while.
  bool unmounted = false;
  std::string last_output;
  bool hung = !pending_mounts_.empty();
  auto deadline = Clock::now() +
                  std::chrono::milliseconds(hung ? kFuseUnmountRetryWhenHungMs
                                                 : kFuseUnmountRetryMs);
  int sleep_ms = 10;
  while (true) {
    if (!IsMountPoint(fuse_dir_)) {
      unmounted = true;
      break;
    }
    auto run = RunProgram({fusermount_, "-u", fuse_dir_}, 10000);
    if (run.ok() && run->Succeeded()) {
      unmounted = true;
      break;
    }
    last_output =
        run.ok() ? run->output : std::string(ToStd(run.status().message()));
    if (Clock::now() >= deadline) break;
    SleepMs(sleep_ms);
    sleep_ms = std::min(sleep_ms * 2, 200);
  }
  if (!unmounted) {
    Note(&result, absl::UnavailableError(StrCat("fusermount3 -u ", fuse_dir_,
                                                " kept failing (", last_output,
                                                "); unmounted lazily")));
    auto run = RunProgram({fusermount_, "-u", "-z", fuse_dir_}, 10000);
    if (!run.ok() || !run->Succeeded()) {
      ::umount2(fuse_dir_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    }
  }
  int ws = 0;
  if (!WaitForExit(nbdfuse_pid_, &ws,
                   hung ? kProcessExitWaitWhenHungMs : kProcessExitWaitMs)) {
    // Still serving a lazily unmounted file system to a stuck user (a mount
    // that hangs): ending nbdfuse aborts the FUSE connection, which fails
    // the stuck I/O.
    Note(&result, absl::UnavailableError(StrCat(
                      "nbdfuse (pid ", nbdfuse_pid_,
                      ") did not exit after its unmount; sent SIGTERM")));
    ::kill(nbdfuse_pid_, SIGTERM);
    if (!WaitForExit(nbdfuse_pid_, &ws, kProcessExitWaitMs)) {
      ::kill(nbdfuse_pid_, SIGKILL);
      while (::waitpid(nbdfuse_pid_, &ws, 0) < 0 && errno == EINTR) {
      }
    }
  } else if (unmounted && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
    Note(&result,
         absl::UnavailableError(StrCat("nbdfuse ", DescribeWaitStatus(ws),
                                       "; it said: ", FileTail(nbdfuse_log_))));
  }
  nbdfuse_pid_ = -1;
  return result;
}

Status PseudoDisk::Detach() {
  if (detached_) return absl::OkStatus();
  detached_ = true;
  attached_ = false;
  Status result;
  // 1. The file systems, last mounted first.
  for (auto it = filesystems_.rbegin(); it != filesystems_.rend(); ++it) {
    if (it->mount_path.empty()) continue;
    const char* path = it->mount_path.c_str();
    if (::umount2(path, UMOUNT_NOFOLLOW) == 0) continue;
    int err = errno;
    if (err == EBUSY) {
      // Someone still has files open in it: detach it from the tree now;
      // the kernel finishes when they close them.
      ::umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
      Note(&result, absl::UnavailableError(
                        StrCat(DescribePartition(it->partition), ": ",
                               it->mount_path, " was busy; unmounted lazily")));
    } else if (err != EINVAL && err != ENOENT) {
      Status s = ErrnoToStatus(err, "umount", it->mount_path);
      Note(&result, Status(s.code(), StrCat(DescribePartition(it->partition),
                                            ": ", ToStd(s.message()))));
    }
  }
  // 2. Mounts that timed out and have returned since.
  ReapPendingMounts(0);
  // 3. nbdfuse (the loop devices have gone with their mounts).
  Note(&result, StopNbdfuse());
  // 4. Mounts that timed out: their I/O fails now that FUSE is gone.
  ReapPendingMounts(kProcessExitWaitMs);
  for (const PendingMount& pm : pending_mounts_) {
    Note(&result, absl::UnavailableError(StrCat(
                      "a mount(2) at ", pm.path, " (pid ", pm.pid,
                      ") is still stuck; a background thread reaps it")));
    std::thread([pm] {
      int ws = 0;
      while (::waitpid(pm.pid, &ws, 0) < 0 && errno == EINTR) {
      }
      if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
        ::umount2(pm.path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
      }
    }).detach();
  }
  pending_mounts_.clear();
  // 5. The directory.
  for (const std::string& d : mount_dirs_) {
    if (IsMountPoint(d)) ::umount2(d.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    if (::rmdir(d.c_str()) != 0 && errno != ENOENT) {
      Note(&result, ErrnoToStatus(errno, "rmdir", d));
    }
  }
  mount_dirs_.clear();
  if (!dir_.empty()) {
    ::unlink(nbdfuse_pid_file_.c_str());
    ::unlink(nbdfuse_log_.c_str());
    if (::rmdir(fuse_dir_.c_str()) != 0 && errno != ENOENT) {
      Note(&result, ErrnoToStatus(errno, "rmdir", fuse_dir_));
    }
    if (::rmdir(dir_.c_str()) != 0 && errno != ENOENT) {
      Note(&result, ErrnoToStatus(errno, "rmdir", dir_));
    }
  }
  return result;
}

// ---- Stale sessions ---------------------------------------------------------

namespace {

// argv of a live (not zombie) process; empty if gone.
std::vector<std::string> ProcessArgv(pid_t pid) {
  std::vector<std::string> argv;
  std::string stat;
  if (!ReadSmallFile(StrCat("/proc/", pid, "/stat"), &stat)) return argv;
  size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= stat.size() ||
      stat[close_paren + 2] == 'Z') {
    return argv;
  }
  std::string cmdline;
  if (!ReadSmallFile(StrCat("/proc/", pid, "/cmdline"), &cmdline)) return argv;
  size_t pos = 0;
  while (pos < cmdline.size()) {
    size_t nul = cmdline.find('\0', pos);
    if (nul == std::string::npos) nul = cmdline.size();
    argv.push_back(cmdline.substr(pos, nul - pos));
    pos = nul + 1;
  }
  return argv;
}

bool ProcessGone(pid_t pid) { return ProcessArgv(pid).empty(); }

// Ends the process named in `pid_file` if it runs `program` with that pid
// file on its command line. True if one was ended.
bool EndProcessOfPidFile(const std::string& pid_file,
                         std::string_view program) {
  std::string text;
  if (!ReadSmallFile(pid_file, &text)) return false;
  std::string_view digits = TrimSpace(text);
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  pid_t pid = static_cast<pid_t>(std::stol(std::string(digits)));
  if (pid <= 1 || pid == ::getpid()) return false;
  std::vector<std::string> argv = ProcessArgv(pid);
  if (argv.empty()) return false;
  std::string_view name = argv[0];
  size_t slash = name.rfind('/');
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  if (name != program) return false;
  if (std::find(argv.begin(), argv.end(), pid_file) == argv.end()) return false;
  ::kill(pid, SIGTERM);
  auto deadline = Clock::now() + std::chrono::milliseconds(kProcessExitWaitMs);
  while (!ProcessGone(pid)) {
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      break;
    }
    SleepMs(20);
  }
  int ws;
  ::waitpid(pid, &ws, WNOHANG);  // if it happens to be our child
  return true;
}

// Visits everything below `dir` (not `dir` itself), children before their
// directory, without following symbolic links or entering another file
// system (a mount that could not be removed).
void WalkTree(const std::string& dir, dev_t dev, int depth,
              const std::function<void(const std::string& path,
                                       const struct stat& st)>& visit) {
  if (depth > 32) return;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  ::closedir(d);
  for (const std::string& name : names) {
    std::string path = JoinPath(dir, name);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || st.st_dev != dev) continue;
    if (S_ISDIR(st.st_mode)) WalkTree(path, dev, depth + 1, visit);
    visit(path, st);
  }
}

std::vector<std::string> FindFilesNamed(const std::string& dir, dev_t dev,
                                        std::string_view name) {
  std::vector<std::string> out;
  WalkTree(dir, dev, 0, [&](const std::string& path, const struct stat& st) {
    size_t slash = path.rfind('/');
    if (S_ISREG(st.st_mode) &&
        std::string_view(path).substr(slash + 1) == name) {
      out.push_back(path);
    }
  });
  return out;
}

// Removes `dir` and everything in it (on the same file system).
void RemoveTree(const std::string& dir, dev_t dev) {
  WalkTree(dir, dev, 0, [](const std::string& path, const struct stat& st) {
    if (S_ISDIR(st.st_mode)) {
      ::rmdir(path.c_str());
    } else {
      ::unlink(path.c_str());
    }
  });
  ::rmdir(dir.c_str());
}

// Loop devices whose backing file is below `dir`.
std::vector<std::string> LoopsBackedUnder(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir("/sys/block");
  if (d == nullptr) return out;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind("loop", 0) != 0) continue;
    std::string backing;
    if (!ReadSmallFile(StrCat("/sys/block/", name, "/loop/backing_file"),
                       &backing)) {
      continue;
    }
    while (!backing.empty() && backing.back() == '\n') backing.pop_back();
    if (backing.size() > dir.size() &&
        backing.compare(0, dir.size(), dir) == 0 &&
        backing[dir.size()] == '/') {
      out.push_back(StrCat("/dev/", name));
    }
  }
  ::closedir(d);
  return out;
}

}  // namespace

StatusOr<int> CleanStalePseudoDisks(const std::string& runtime_dir) {
  if (runtime_dir.empty()) {
    return absl::InvalidArgumentError("no runtime directory given");
  }
  char resolved[PATH_MAX];
  if (::realpath(runtime_dir.c_str(), resolved) == nullptr) {
    if (errno == ENOENT) return 0;
    return ErrnoToStatus(errno, "realpath", runtime_dir);
  }
  std::string dir = resolved;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoToStatus(errno, "stat", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(StrCat(dir, " is not a directory"));
  }
  if (dir == "/" || (st.st_mode & 0022) != 0 || st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(
        StrCat("refusing to clean ", dir,
               ": a runtime directory must be private (owned by this user, not "
               "writable by group or others)"));
  }
  Status result;
  // 1. File systems (not FUSE) first, deepest first, so loop devices go.
  std::vector<MountEntry> mounts = MountsUnder(dir, /*include_dir=*/false);
  std::stable_sort(mounts.begin(), mounts.end(),
                   [](const MountEntry& a, const MountEntry& b) {
                     return Depth(a.mount_point) > Depth(b.mount_point);
                   });
  auto is_fuse = [](const MountEntry& m) {
    return m.fs_type.rfind("fuse", 0) == 0;
  };
  for (bool fuse : {false, true}) {
    if (fuse) {
      // 2. Loop devices still bound to a file below `dir` (a mount that
      // never happened, a crash before AUTOCLEAR was set).
      for (const std::string& loop : LoopsBackedUnder(dir)) {
        int fd = ::open(loop.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
          ::ioctl(fd, LOOP_CLR_FD, 0);
          ::close(fd);
        }
      }
    }
    for (const MountEntry& m : mounts) {
      if (is_fuse(m) != fuse) continue;
      if (::umount2(m.mount_point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 &&
          errno != EINVAL && errno != ENOENT) {
        Note(&result, ErrnoToStatus(errno, "umount", m.mount_point));
      }
    }
  }
  // 3. Processes: nbdfuse (its mount is gone) and nbdkit.
  for (const std::string& f : FindFilesNamed(dir, st.st_dev, "nbdfuse.pid")) {
    EndProcessOfPidFile(f, "nbdfuse");
  }
  for (const std::string& f : FindFilesNamed(dir, st.st_dev, "nbdkit.pid")) {
    EndProcessOfPidFile(f, "nbdkit");
  }
  // 4. The session directories (never crossing into a mount that could not
  // be removed).
  int sessions = 0;
  CAIRN_ASSIGN_OR_RETURN(std::vector<std::string> children,
                         Env::Default()->GetChildren(dir));
  for (const std::string& name : children) {
    std::string path = JoinPath(dir, name);
    struct stat cst;
    if (::lstat(path.c_str(), &cst) != 0 || !S_ISDIR(cst.st_mode)) continue;
    if (cst.st_dev != st.st_dev) continue;  // a mount that stayed
    RemoveTree(path, st.st_dev);
    if (::lstat(path.c_str(), &cst) == 0) {
      Note(&result, absl::FailedPreconditionError(
                        StrCat("could not remove the stale session ", path)));
    } else {
      ++sessions;
    }
  }
  if (!result.ok()) return result;
  return sessions;
}

}  // namespace cairn
