#include "media_agent/instant_boot.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "absl/strings/str_replace.h"
#include "common/env.h"
#include "common/file_publish.h"
#include "common/process_util.h"
#include "common/strings.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "media_agent/key_handover.h"
#include "media_agent/nbd_export.h"
#include "media_agent/qmp_client.h"

namespace cairn {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// QEMU's option parser treats ',' as a separator; a literal comma in a
// value is written ",,".
std::string EscapeOptionValue(const std::string& value) {
  return absl::StrReplaceAll(value, {{",", ",,"}});
}

// A new empty file ".NAME.cairn-instant-boot-XXXXXX" next to `path`.
StatusOr<std::string> ReserveTempName(const std::string& dir,
                                      const std::string& name) {
  std::string tmpl = StrCat(dir, "/.", name, ".cairn-instant-boot-XXXXXX");
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return ErrnoToStatus(errno, "mkstemp", tmpl);
  ::close(fd);
  return tmpl;
}

// Removes a file this call created when it fails before handing it over.
class FileGuard {
 public:
  explicit FileGuard(std::string path) : path_(std::move(path)) {}
  ~FileGuard() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

// Refuses `path` if it exists and !overwrite; a directory always.
Status CheckTarget(const std::string& path, bool overwrite) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(StrCat(path, " is a directory"));
    }
    if (!overwrite) {
      return absl::AlreadyExistsError(
          StrCat(path, " already exists; it is not replaced without --force"));
    }
  } else if (errno != ENOENT) {
    return ErrnoToStatus(errno, "stat", path);
  }
  return absl::OkStatus();
}

Status ValidateOptions(const InstantBootOptions& o) {
  if (o.store.empty()) return absl::InvalidArgumentError("no store given");
  if (o.backup_id.empty()) return absl::InvalidArgumentError("no backup given");
  if (o.overlay.empty()) {
    return absl::InvalidArgumentError("no overlay path given");
  }
  if (o.firmware != "bios" && o.firmware != "uefi") {
    return absl::InvalidArgumentError(
        StrCat("unknown firmware '", o.firmware, "' (bios or uefi)"));
  }
  if (o.disk_bus != "virtio" && o.disk_bus != "ahci" && o.disk_bus != "nvme") {
    return absl::InvalidArgumentError(
        StrCat("unknown disk bus '", o.disk_bus, "' (virtio, ahci or nvme)"));
  }
  if (o.nic != "virtio" && o.nic != "e1000" && o.nic != "none") {
    return absl::InvalidArgumentError(
        StrCat("unknown NIC model '", o.nic, "' (virtio, e1000 or none)"));
  }
  if (o.memory_mib < 256 || o.memory_mib > (1 << 20)) {
    return absl::InvalidArgumentError(
        StrCat("memory ", o.memory_mib, " MiB is out of range (256..1048576)"));
  }
  if (o.cpus < 1 || o.cpus > 64) {
    return absl::InvalidArgumentError(
        StrCat("cpus ", o.cpus, " is out of range (1..64)"));
  }
  return absl::OkStatus();
}

// The stream job's entry in query-block-jobs, or null.
json FindJob(const json& jobs) {
  if (!jobs.is_array()) return json();
  for (const json& j : jobs) {
    if (j.is_object() && j.value("device", "") == kStreamJob) return j;
  }
  return json();
}

// The disk node's entry in query-named-block-nodes, or null.
json FindDisk(const json& nodes) {
  if (!nodes.is_array()) return json();
  for (const json& n : nodes) {
    if (n.is_object() && n.value("node-name", "") == kDiskNode) return n;
  }
  return json();
}

// One instant boot from start to end; the members own the processes, so
// every early return stops QEMU (destructor of ChildProcess: SIGKILL) and
// the export (NbdExport's destructor).
class Session {
 public:
  explicit Session(const InstantBootOptions& o) : o_(o) {}
  StatusOr<InstantBootResult> Run();

 private:
  void Event(std::string_view name, const json& details = json::object()) {
    if (o_.on_event) o_.on_event(name, details);
  }
  Status Prepare();
  Status StartExport();
  Status CreateOverlay();
  Status StartVm();
  Status StartStream();
  void Loop();
  void HandleEvent(const json& event);
  void RequestQuit();
  void PollProgress();
  void StopExport();
  Status StreamFailure(const std::string& qemu_message);
  std::string QemuLogTail() const {
    return ReadLogTail(StrCat(dir_->path(), "/qemu.log"), 2000);
  }

  const InstantBootOptions& o_;
  const Clock::time_point start_ = Clock::now();
  InstantBootResult result_;
  std::string qemu_, qemu_img_;
  std::string overlay_dir_, vars_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<NbdExport> export_;
  std::unique_ptr<ChildProcess> vm_;
  std::unique_ptr<QmpClient> qmp_;
  Clock::time_point vm_start_, stream_start_;

  bool stream_running_ = false;
  bool stream_ok_ = false;
  Status stream_error_;
  std::string job_error_;  // from BLOCK_JOB_ERROR
  bool guest_off_ = false;
  bool stopping_ = false;
  bool stop_requested_ = false;
  Clock::time_point quit_sent_;
  uint64_t total_ = 0, done_ = 0;
  int vm_status_ = 0;
};

Status Session::Prepare() {
  CAIRN_RETURN_IF_ERROR(ValidateOptions(o_));
  CAIRN_ASSIGN_OR_RETURN(result_.overlay, AbsolutePath(o_.overlay));
  result_.backup_id = o_.backup_id;
  std::filesystem::path p(result_.overlay);
  overlay_dir_ = p.parent_path().string();
  struct stat st;
  if (::stat(overlay_dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(
        StrCat("overlay directory ", overlay_dir_, " does not exist"));
  }
  CAIRN_RETURN_IF_ERROR(CheckTarget(result_.overlay, o_.overwrite));
  if (o_.firmware == "uefi") {
    vars_ = StrCat(result_.overlay, ".vars.fd");
    CAIRN_RETURN_IF_ERROR(CheckTarget(vars_, o_.overwrite));
    for (const std::string& f : {o_.ovmf_code, o_.ovmf_vars_template}) {
      if (::access(f.c_str(), R_OK) != 0) {
        return absl::NotFoundError(
            StrCat("OVMF file missing: ", f, " (install package ovmf)"));
      }
    }
    result_.vars_file = vars_;
  }
  CAIRN_ASSIGN_OR_RETURN(qemu_, FindProgram(o_.qemu_path, "qemu-system-x86_64",
                                            "qemu-system-x86"));
  CAIRN_ASSIGN_OR_RETURN(
      qemu_img_, FindProgram(o_.qemu_img_path, "qemu-img", "qemu-utils"));
  CAIRN_ASSIGN_OR_RETURN(dir_,
                         TempDir::Create("cairn-instant-boot", o_.runtime_dir));
  return absl::OkStatus();
}

Status Session::StartExport() {
  NbdExportOptions eo;
  eo.store = o_.store;
  eo.backup_id = o_.backup_id;
  if (o_.key != nullptr) eo.key_secret = o_.key->secret();
  eo.runtime_dir = dir_->path();
  eo.lock_store = true;  // a stand-alone command: nbdkit holds the lock
  eo.nbdkit_path = o_.nbdkit_path;
  eo.plugin_path = o_.plugin_path;
  auto started = NbdExport::Start(eo);
  WipeSecret(&eo.key_secret);
  if (!started.ok()) return started.status();
  export_ = *std::move(started);
  Event("export-started",
        {{"uri", export_->uri()}, {"backup_id", o_.backup_id}});
  return absl::OkStatus();
}

Status Session::CreateOverlay() {
  const std::string name =
      std::filesystem::path(result_.overlay).filename().string();
  CAIRN_ASSIGN_OR_RETURN(std::string tmp, ReserveTempName(overlay_dir_, name));
  FileGuard guard(tmp);
  CAIRN_ASSIGN_OR_RETURN(CommandResult created,
                         RunCommand({qemu_img_, "create", "-q", "-f", "qcow2",
                                     "-F", "raw", "-b", export_->uri(), tmp},
                                    absl::Seconds(120)));
  if (created.exit_code != 0) {
    return absl::InternalError(
        StrCat("qemu-img create of the overlay failed: ", created.output));
  }
  CAIRN_RETURN_IF_ERROR(SyncFile(tmp, /*private_mode=*/true));
  std::optional<FileGuard> vars_guard;
  std::string vars_tmp;
  if (!vars_.empty()) {
    const std::string vname = std::filesystem::path(vars_).filename().string();
    CAIRN_ASSIGN_OR_RETURN(vars_tmp, ReserveTempName(overlay_dir_, vname));
    vars_guard.emplace(vars_tmp);
    std::error_code ec;
    std::filesystem::copy_file(
        o_.ovmf_vars_template, vars_tmp,
        std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) {
      return absl::InternalError(StrCat("copy ", o_.ovmf_vars_template, " to ",
                                        vars_tmp, ": ", ec.message()));
    }
    CAIRN_RETURN_IF_ERROR(SyncFile(vars_tmp, /*private_mode=*/true));
  }
  CAIRN_RETURN_IF_ERROR(MoveIntoPlace(tmp, result_.overlay, o_.overwrite));
  guard.Release();
  if (!vars_.empty()) {
    if (Status s = MoveIntoPlace(vars_tmp, vars_, o_.overwrite); !s.ok()) {
      ::unlink(result_.overlay.c_str());
      return s;
    }
    vars_guard->Release();
  }
  return SyncDirectory(overlay_dir_);
}

Status Session::StartVm() {
  InstantBootVm vm;
  vm.qemu = qemu_;
  vm.overlay = result_.overlay;
  vm.qmp_socket = StrCat(dir_->path(), "/qmp.sock");
  vm.serial_log = o_.serial_log;
  vm.vars_file = vars_;
  SpawnOptions so;
  so.stdout_path = StrCat(dir_->path(), "/qemu.log");
  so.stderr_path = so.stdout_path;
  vm_start_ = Clock::now();
  auto spawned = ChildProcess::Spawn(BuildInstantBootQemuArgv(o_, vm), so);
  if (!spawned.ok()) {
    return Status(spawned.status().code(),
                  StrCat("starting QEMU: ", spawned.status().message()));
  }
  vm_ = *std::move(spawned);
  // Connect while QEMU runs; it creates the socket during start-up.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  Status last;
  while (Clock::now() < deadline) {
    if (std::optional<int> st = vm_->WaitUntil(absl::Now())) {
      return absl::InternalError(StrCat("QEMU ", DescribeWaitStatus(*st),
                                        " during start-up: ", QemuLogTail()));
    }
    auto client = QmpClient::Connect(vm.qmp_socket, absl::Seconds(1));
    if (client.ok()) {
      qmp_ = *std::move(client);
      break;
    }
    last = client.status();
    if (last.code() != absl::StatusCode::kDeadlineExceeded) break;
  }
  if (qmp_ == nullptr) {
    return absl::InternalError(StrCat(
        "no QMP connection to QEMU: ", last.message(), "; ", QemuLogTail()));
  }
  Event("vm-started", {{"pid", vm_->pid()},
                       {"overlay", result_.overlay},
                       {"firmware", o_.firmware},
                       {"disk_bus", o_.disk_bus},
                       {"nic", o_.nic},
                       {"memory_mib", o_.memory_mib}});
  return absl::OkStatus();
}

Status Session::StartStream() {
  CAIRN_ASSIGN_OR_RETURN(json blocks, qmp_->Execute("query-named-block-nodes"));
  json disk = FindDisk(blocks);
  if (disk.is_null() || !disk.contains("image")) {
    return absl::InternalError(
        StrCat("QEMU has no block node ", kDiskNode, ": ", blocks.dump()));
  }
  result_.virtual_size = disk["image"].value("virtual-size", uint64_t{0});
  total_ = result_.virtual_size;
  stream_start_ = Clock::now();
  json stream = {{"job-id", std::string(kStreamJob)},
                 {"device", std::string(kDiskNode)}};
  if (o_.copy_bytes_per_second > 0) {
    stream["speed"] = o_.copy_bytes_per_second;
  }
  CAIRN_RETURN_IF_ERROR(qmp_->Execute("block-stream", stream).status());
  stream_running_ = true;
  Event("stream-started", {{"job", std::string(kStreamJob)},
                           {"node", std::string(kDiskNode)},
                           {"speed", o_.copy_bytes_per_second}});
  CAIRN_RETURN_IF_ERROR(qmp_->Execute("cont").status());
  if (o_.progress) o_.progress(0, total_);
  return absl::OkStatus();
}

void Session::StopExport() {
  if (export_ == nullptr) return;
  Status s = export_->Stop();
  export_.reset();
  json d = json::object();
  if (!s.ok()) d["error"] = std::string(s.message());
  Event("export-stopped", d);
}

Status Session::StreamFailure(const std::string& qemu_message) {
  std::string text = StrCat("the background copy failed: ", qemu_message);
  if (!job_error_.empty()) text = StrCat(text, " (", job_error_, ")");
  if (export_ != nullptr) {
    std::string log;
    (void)Env::Default()->ReadFileToString(export_->log_path(), &log);
    Status plugin = StatusFromNbdkitLog(log, absl::InternalError(""));
    if (plugin.code() != absl::StatusCode::kInternal) {
      return Status(plugin.code(),
                    StrCat(text, "; nbdkit: ", plugin.message()));
    }
    if (Status running = export_->CheckRunning(); !running.ok()) {
      return absl::InternalError(
          StrCat(text, "; the NBD export stopped: ", running.message()));
    }
  }
  return absl::InternalError(text);
}

void Session::RequestQuit() {
  if (stopping_) return;
  stopping_ = true;
  quit_sent_ = Clock::now();
  if (qmp_ != nullptr && qmp_->connected()) {
    auto r = qmp_->Execute("quit", json(), absl::Seconds(5));
    // Unavailable: QEMU closed the connection while quitting - fine.
    if (r.ok() || r.status().code() == absl::StatusCode::kUnavailable) return;
  }
  ::kill(vm_->pid(), SIGTERM);  // QEMU quits cleanly on SIGTERM too
}

void Session::PollProgress() {
  if (!stream_running_ || qmp_ == nullptr || !qmp_->connected()) return;
  auto jobs = qmp_->Execute("query-block-jobs", json(), absl::Seconds(10));
  if (!jobs.ok()) return;
  json job = FindJob(*jobs);
  if (job.is_null()) return;
  total_ = job.value("len", total_);
  done_ = job.value("offset", done_);
  if (o_.progress) o_.progress(done_, total_);
}

void Session::HandleEvent(const json& event) {
  const std::string name = event.value("event", "");
  const json data = event.value("data", json::object());
  if (name == "BLOCK_JOB_ERROR" && data.value("device", "") == kStreamJob) {
    job_error_ = StrCat(data.value("operation", "?"), " error, action ",
                        data.value("action", "?"));
    return;
  }
  if (name == "BLOCK_JOB_COMPLETED" && data.value("device", "") == kStreamJob) {
    stream_running_ = false;
    total_ = data.value("len", total_);
    done_ = data.value("offset", done_);
    if (data.contains("error")) {
      stream_error_ = StreamFailure(data.value("error", "unknown error"));
      Event("stream-error", {{"message", std::string(stream_error_.message())},
                             {"bytes", done_}});
      if (guest_off_) RequestQuit();
      return;
    }
    result_.stream_seconds =
        std::chrono::duration<double>(Clock::now() - stream_start_).count();
    result_.streamed_bytes = done_;
    // block-stream without a base drops the backing file; make sure.
    auto blocks = qmp_->Execute("query-named-block-nodes");
    json disk = blocks.ok() ? FindDisk(*blocks) : json();
    if (!blocks.ok() &&
        blocks.status().code() == absl::StatusCode::kUnavailable) {
      // QEMU is already gone (the completion was read after it exited):
      // the qemu-img info check at the end decides.
    } else if (disk.is_null()) {
      stream_error_ = absl::InternalError(
          StrCat("the copy completed but query-named-block-nodes failed: ",
                 blocks.ok() ? blocks->dump()
                             : std::string(blocks.status().message())));
    } else if (disk.contains("backing_file") ||
               (disk.contains("image") &&
                disk["image"].contains("backing-image"))) {
      stream_error_ = absl::InternalError(
          StrCat("the copy completed but the overlay still has a backing "
                 "file: ",
                 disk.dump()));
    }
    if (!stream_error_.ok()) {
      Event("stream-error", {{"message", std::string(stream_error_.message())},
                             {"bytes", done_}});
      if (guest_off_) RequestQuit();
      return;
    }
    stream_ok_ = true;
    result_.stream_complete = true;
    if (o_.progress) o_.progress(total_, total_);
    Event("stream-complete",
          {{"bytes", done_}, {"seconds", result_.stream_seconds}});
    StopExport();
    if (guest_off_) RequestQuit();
    return;
  }
  if (name == "SHUTDOWN") {
    if (data.value("guest", false) && !guest_off_) {
      guest_off_ = true;
      Event("guest-shutdown", {{"stream_running", stream_running_}});
      // -no-shutdown keeps QEMU (and the job) alive until the copy is over.
      if (!stream_running_) RequestQuit();
    }
  }
}

void Session::Loop() {
  const std::vector<std::string> wanted = {"BLOCK_JOB_COMPLETED",
                                           "BLOCK_JOB_ERROR", "SHUTDOWN"};
  auto next_progress = Clock::now() + std::chrono::seconds(1);
  bool killed = false;
  while (true) {
    if (std::optional<int> st = vm_->WaitUntil(absl::Now())) {
      vm_status_ = *st;
      break;
    }
    if (!stop_requested_ && o_.stop_requested && o_.stop_requested()) {
      stop_requested_ = true;
      Event("stop-requested");
      RequestQuit();
    }
    if (qmp_ != nullptr && qmp_->connected()) {
      auto event = qmp_->WaitForAnyEvent(wanted, absl::Milliseconds(500));
      if (event.ok()) {
        HandleEvent(*event);
        continue;
      }
      // Events not asked for would pile up: take them all (HandleEvent
      // ignores what it does not know).
      for (const json& other : qmp_->TakeEvents()) HandleEvent(other);
    } else {
      (void)vm_->WaitUntil(absl::Now() + absl::Milliseconds(500));
    }
    if (Clock::now() >= next_progress) {
      PollProgress();
      next_progress = Clock::now() + std::chrono::seconds(1);
    }
    if (stopping_ && !killed &&
        Clock::now() - quit_sent_ > std::chrono::seconds(30)) {
      killed = true;
      ::kill(vm_->pid(), SIGKILL);
    }
  }
  // Events QEMU sent just before it exited (a completion, then SHUTDOWN).
  if (qmp_ != nullptr) {
    for (const json& event : qmp_->TakeEvents()) HandleEvent(event);
  }
}

StatusOr<InstantBootResult> Session::Run() {
  CAIRN_RETURN_IF_ERROR(Prepare());
  CAIRN_RETURN_IF_ERROR(StartExport());
  CAIRN_RETURN_IF_ERROR(CreateOverlay());
  Status started = StartVm();
  if (started.ok()) started = StartStream();
  if (!started.ok()) {
    if (vm_ != nullptr) vm_->Terminate(absl::Seconds(5));
    ::unlink(result_.overlay.c_str());
    if (!vars_.empty()) ::unlink(vars_.c_str());
    return started;
  }
  Loop();
  qmp_.reset();
  result_.vm_seconds = SecondsSince(vm_start_);
  const std::string how = DescribeWaitStatus(vm_status_);
  Event("vm-exited", {{"status", how}});
  if (stop_requested_) {
    result_.vm_end = "stopped on request";
  } else if (guest_off_) {
    result_.vm_end = "guest powered off";
  } else {
    result_.vm_end = StrCat("QEMU ", how);
  }
  const bool qemu_failed =
      !WIFEXITED(vm_status_) || WEXITSTATUS(vm_status_) != 0;
  StopExport();
  Status synced = SyncFile(result_.overlay, /*private_mode=*/false);
  if (!vars_.empty() && synced.ok()) synced = SyncFile(vars_, false);
  result_.seconds = SecondsSince(start_);
  if (stream_ok_) {
    CAIRN_RETURN_IF_ERROR(synced);
    CAIRN_ASSIGN_OR_RETURN(
        CommandResult info,
        RunCommand({qemu_img_, "info", "--output=json", result_.overlay},
                   absl::Seconds(60)));
    json j = json::parse(info.output, nullptr, false);
    if (info.exit_code != 0 || !j.is_object()) {
      return absl::InternalError(
          StrCat("qemu-img info of the overlay failed: ", info.output));
    }
    if (j.contains("backing-filename")) {
      return absl::InternalError(
          StrCat("the overlay ", result_.overlay,
                 " still names a backing file after the copy: ",
                 j["backing-filename"].dump()));
    }
    return result_;
  }
  if (!stream_error_.ok()) return stream_error_;
  if (stop_requested_) {
    return absl::CancelledError(
        StrCat("stopped on request before the background copy completed (",
               done_, " of ", total_, " bytes copied); the overlay ",
               result_.overlay, " still depends on the backup"));
  }
  return absl::InternalError(
      StrCat("QEMU ", how, " before the background copy completed (", done_,
             " of ", total_, " bytes copied)",
             qemu_failed ? StrCat(": ", QemuLogTail()) : std::string()));
}

}  // namespace

std::vector<std::string> BuildInstantBootQemuArgv(
    const InstantBootOptions& options, const InstantBootVm& vm) {
  std::vector<std::string> argv = {
      vm.qemu,
      "-name",
      EscapeOptionValue(StrCat("cairn-instant-boot-", options.backup_id)),
      "-machine",
      "q35,accel=tcg",
      "-cpu",
      "max",
      "-smp",
      StrCat(options.cpus),
      "-m",
      StrCat(options.memory_mib),
      "-S",
      "-no-shutdown",
      "-no-user-config",
      "-nodefaults",
      "-display",
      "none",
      "-vga",
      "std",
      "-monitor",
      "none",
      "-chardev",
      StrCat("socket,id=cairn-qmp,server=on,wait=off,path=",
             EscapeOptionValue(vm.qmp_socket)),
      "-mon",
      "chardev=cairn-qmp,mode=control",
  };
  if (vm.serial_log.empty()) {
    argv.insert(argv.end(), {"-serial", "null"});
  } else {
    argv.insert(argv.end(), {"-chardev",
                             StrCat("file,id=cairn-serial,path=",
                                    EscapeOptionValue(vm.serial_log)),
                             "-serial", "chardev:cairn-serial"});
  }
  if (options.firmware == "uefi") {
    argv.insert(argv.end(),
                {"-drive",
                 StrCat("if=pflash,format=raw,unit=0,readonly=on,file=",
                        EscapeOptionValue(options.ovmf_code)),
                 "-drive",
                 StrCat("if=pflash,format=raw,unit=1,file=",
                        EscapeOptionValue(vm.vars_file))});
  }
  // The overlay; its backing (the NBD export, raw) is opened from its header.
  json blockdev = {{"driver", "qcow2"},
                   {"node-name", std::string(kDiskNode)},
                   {"discard", "unmap"},
                   {"file", {{"driver", "file"}, {"filename", vm.overlay}}}};
  argv.insert(argv.end(), {"-blockdev", blockdev.dump()});
  const std::string drive = StrCat("drive=", kDiskNode, ",id=cairn-disk-dev");
  if (options.disk_bus == "ahci") {
    // q35's built-in ICH9 AHCI controller, first port.
    argv.insert(argv.end(), {"-device", StrCat("ide-hd,", drive,
                                               ",bus=ide.0,bootindex=0")});
  } else if (options.disk_bus == "nvme") {
    argv.insert(
        argv.end(),
        {"-device", StrCat("nvme,", drive, ",serial=CAIRN0001,bootindex=0")});
  } else {
    argv.insert(argv.end(),
                {"-device", StrCat("virtio-blk-pci,", drive, ",bootindex=0")});
  }
  if (options.nic != "none") {
    const char* device = options.nic == "e1000" ? "e1000" : "virtio-net-pci";
    argv.insert(argv.end(), {"-netdev", "user,id=cairn-net", "-device",
                             StrCat(device, ",netdev=cairn-net")});
  }
  return argv;
}

StatusOr<InstantBootResult> RunInstantBoot(const InstantBootOptions& options) {
  Session session(options);
  return session.Run();
}

}  // namespace cairn
