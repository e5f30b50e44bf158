#include "boot_check.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qemu_command.h"
#include "subprocess.h"

namespace cairn::boot {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(200);
constexpr absl::Duration kHelperTimeout = absl::Seconds(60);

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

absl::StatusOr<std::string> AbsolutePath(const std::string& path) {
  char* resolved = realpath(path.c_str(), nullptr);
  if (resolved == nullptr) {
    int e = errno;
    std::string msg = absl::StrCat(path, ": ", std::strerror(e));
    return e == ENOENT ? absl::NotFoundError(msg) : absl::InternalError(msg);
  }
  std::string out(resolved);
  free(resolved);
  return out;
}

absl::StatusOr<std::string> MakeWorkDir(const std::string& requested) {
  if (!requested.empty()) {
    if (mkdir(requested.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::InternalError(
          absl::StrCat("mkdir ", requested, ": ", std::strerror(errno)));
    }
    return AbsolutePath(requested);
  }
  const char* tmp = getenv("TMPDIR");
  std::string templ = absl::StrCat(
      tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/cairn-boot.XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp ", templ, ": ", std::strerror(errno)));
  }
  return templ;
}

absl::Status CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", from));
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", to));
  out << in.rdbuf();
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("short write to ", to));
  return absl::OkStatus();
}

std::string ReadSmallFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string s(max_bytes, '\0');
  in.read(s.data(), static_cast<std::streamsize>(max_bytes));
  s.resize(static_cast<size_t>(in.gcount()));
  return s;
}

// Virtual size of `disk` from `qemu-img info --output=json`.
absl::StatusOr<uint64_t> VirtualSize(const BootRequest& req,
                                     const std::string& disk) {
  absl::StatusOr<CommandResult> r =
      RunCommand({req.qemu_img_binary, "info", "--output=json", "-f",
                  req.disk_format, disk},
                 kHelperTimeout);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("qemu-img info ", disk, " failed: ", r->output));
  }
  constexpr std::string_view kKey = "\"virtual-size\":";
  size_t pos = r->output.find(kKey);
  if (pos == std::string::npos) {
    return absl::InternalError(absl::StrCat("no virtual-size in: ", r->output));
  }
  pos += kKey.size();
  while (pos < r->output.size() && r->output[pos] == ' ') ++pos;
  size_t end = pos;
  while (end < r->output.size() && isdigit(r->output[end])) ++end;
  uint64_t size = 0;
  if (!absl::SimpleAtoi(r->output.substr(pos, end - pos), &size)) {
    return absl::InternalError(
        absl::StrCat("bad virtual-size in: ", r->output));
  }
  return size;
}

// Reads a file that another process appends to, from where it left off.
class FileFollower {
 public:
  explicit FileFollower(std::string path) : path_(std::move(path)) {}
  ~FileFollower() {
    if (fd_ >= 0) close(fd_);
  }
  // Returns what was appended since the last call ("" if nothing, or if the
  // file does not exist yet).
  std::string ReadNew() {
    if (fd_ < 0) {
      fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) return "";
    }
    std::string out;
    char buf[16384];
    ssize_t n;
    while ((n = read(fd_, buf, sizeof(buf))) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

std::string BootResult::SerialTail(int max_lines) const {
  std::ifstream in(serial_log_path, std::ios::binary);
  if (!in) return "";
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (static_cast<int>(lines.size()) > max_lines) lines.pop_front();
  }
  return absl::StrJoin(lines, "\n");
}

absl::StatusOr<BootResult> BootCheck(const BootRequest& request) {
  if (absl::Status s = ValidateHardwareModel(request.hardware); !s.ok()) {
    return s;
  }
  if (request.marker.empty()) {
    return absl::InvalidArgumentError("marker must not be empty");
  }
  absl::StatusOr<std::string> disk = AbsolutePath(request.disk_path);
  if (!disk.ok()) return disk.status();
  const bool uefi = request.hardware.firmware == Firmware::kUefi;
  if (uefi) {
    for (const std::string& f :
         {request.ovmf_code_path, request.ovmf_vars_template}) {
      if (!FileExists(f)) {
        return absl::NotFoundError(
            absl::StrCat("OVMF file missing: ", f, " (install package ovmf)"));
      }
    }
  }

  absl::StatusOr<std::string> work = MakeWorkDir(request.work_dir);
  if (!work.ok()) return work.status();

  BootResult result;
  result.work_dir = *work;
  result.serial_log_path = *work + "/serial.log";
  result.firmware_log_path = *work + "/firmware.log";
  result.qemu_stderr_path = *work + "/qemu-stderr.log";
  const std::string overlay = *work + "/disk-overlay.qcow2";
  const std::string vars = *work + "/OVMF_VARS.fd";
  // The overlay and VARS copy go on every return path unless asked to keep.
  struct ScratchFiles {
    ~ScratchFiles() {
      if (keep) return;
      unlink(overlay.c_str());
      unlink(vars.c_str());
    }
    const std::string& overlay;
    const std::string& vars;
    bool keep;
  } scratch{overlay, vars, request.keep_disk};

  // The overlay: the fixture (or restored image) is only ever read.
  absl::StatusOr<uint64_t> image_size = VirtualSize(request, *disk);
  if (!image_size.ok()) return image_size.status();
  std::vector<std::string> create = {
      request.qemu_img_binary, "create", "-q",  "-f",   "qcow2", "-F",
      request.disk_format,     "-b",     *disk, overlay};
  if (request.hardware.disk_size_bytes.has_value()) {
    if (*request.hardware.disk_size_bytes < *image_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("disk size ", *request.hardware.disk_size_bytes,
                       " is smaller than the image (", *image_size, " bytes)"));
    }
    create.push_back(absl::StrCat(*request.hardware.disk_size_bytes));
  }
  unlink(overlay.c_str());
  absl::StatusOr<CommandResult> made = RunCommand(create, kHelperTimeout);
  if (!made.ok()) return made.status();
  if (made->exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("qemu-img create failed: ", made->output));
  }
  if (uefi) {
    if (absl::Status s = CopyFile(request.ovmf_vars_template, vars); !s.ok()) {
      return s;
    }
  }

  QemuPaths paths;
  paths.qemu_binary = request.qemu_binary;
  paths.disk = overlay;
  paths.disk_format = "qcow2";
  paths.serial_log = result.serial_log_path;
  paths.firmware_log = result.firmware_log_path;
  if (uefi) {
    paths.ovmf_code = request.ovmf_code_path;
    paths.ovmf_vars = vars;
  }
  result.qemu_argv = BuildQemuArgv(request.hardware, paths);
  // Fresh logs: a stale log from an earlier run in the same work directory
  // must never be read as this boot's output.
  unlink(result.serial_log_path.c_str());
  unlink(result.firmware_log_path.c_str());

  SerialClassifier classifier(request.marker);
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + request.timeout;
  absl::StatusOr<std::unique_ptr<ChildProcess>> qemu = ChildProcess::Spawn(
      result.qemu_argv,
      SpawnOptions{*work + "/qemu-stdout.log", result.qemu_stderr_path});
  if (!qemu.ok()) return qemu.status();

  FileFollower serial(result.serial_log_path);
  FileFollower firmware(result.firmware_log_path);
  std::optional<Verdict> verdict;
  std::optional<int> exit_status;
  bool deadline_passed = false;
  absl::Time last_output = start;
  auto drain = [&]() {
    std::string fw = firmware.ReadNew();
    std::string con = serial.ReadNew();
    if (!fw.empty() || !con.empty()) last_output = absl::Now();
    std::optional<Verdict> v = classifier.FeedFirmware(fw);
    std::optional<Verdict> w = classifier.FeedSerial(con);
    return w.has_value() ? w : v;
  };
  while (true) {
    verdict = drain();
    if (classifier.kernel_started() && !result.kernel_started_after) {
      result.kernel_started_after = absl::Now() - start;
    }
    if (verdict.has_value()) break;
    absl::Time now = absl::Now();
    if (now >= deadline) {
      deadline_passed = true;
      break;
    }
    if (!classifier.kernel_started() &&
        now - last_output >= request.loader_stall_timeout) {
      verdict = Verdict{
          BootOutcome::kBootLoaderFailure,
          absl::StrCat("no console output for ",
                       absl::FormatDuration(request.loader_stall_timeout),
                       " and no kernel (boot loader stuck; GRUB's rescue "
                       "prompt shows on VGA only)")};
      break;
    }
    exit_status = (*qemu)->WaitUntil(std::min(deadline, now + kPollInterval));
    if (exit_status.has_value()) {
      verdict = drain();  // whatever QEMU wrote before it exited
      break;
    }
  }
  result.elapsed = absl::Now() - start;
  if (!exit_status.has_value()) {
    exit_status = (*qemu)->Terminate(absl::Seconds(3));
  }
  result.qemu_exit = DescribeWaitStatus(*exit_status);
  qemu->reset();

  Verdict final_verdict =
      verdict.has_value() ? *verdict : classifier.Finish(deadline_passed);
  result.outcome = final_verdict.outcome;
  result.evidence = final_verdict.evidence;
  result.kernel_started = classifier.kernel_started();
  result.guest_info = classifier.info();

  // QEMU that exits on its own without the guest ever printing anything is a
  // QEMU failure (bad option, missing file), not a boot failure.
  struct stat st;
  bool serial_empty =
      stat(result.serial_log_path.c_str(), &st) != 0 || st.st_size == 0;
  if (!deadline_passed && !verdict.has_value() && serial_empty &&
      !(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0)) {
    return absl::InternalError(
        absl::StrCat("QEMU failed (", result.qemu_exit,
                     "): ", ReadSmallFile(result.qemu_stderr_path, 4096),
                     "\nargv: ", absl::StrJoin(result.qemu_argv, " ")));
  }
  return result;
}

}  // namespace cairn::boot
