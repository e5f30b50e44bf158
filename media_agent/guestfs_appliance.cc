#include "media_agent/guestfs_appliance.h"

#include <dirent.h>
#include <fcntl.h>
#include <guestfs.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include "common/strings.h"
#include "common/temp_dir.h"
#include "common/utf8.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kShutdownTimeout = std::chrono::seconds(60);

bool KvmUsable() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// The processes forked by this process whose command line mentions
// `marker` (qemu and qemu-img of this appliance: their arguments name files
// in its private temporary directory).
std::vector<pid_t> ChildrenMentioning(const std::string& marker) {
  std::vector<pid_t> out;
  const pid_t self = ::getpid();
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (struct dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || end == e->d_name || *end != '\0') continue;
    std::string base = StrCat("/proc/", pid);
    std::ifstream stat_file(base + "/stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)),
                     std::istreambuf_iterator<char>());
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 1));
    std::string state;
    long ppid = 0;
    if (!(fields >> state >> ppid) || ppid != self) continue;
    std::ifstream cmd_file(base + "/cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(cmd_file)),
                        std::istreambuf_iterator<char>());
    if (cmdline.find(marker) != std::string::npos) {
      out.push_back(static_cast<pid_t>(pid));
    }
  }
  ::closedir(d);
  return out;
}

}  // namespace

// Kills the appliance when one armed call outlives its timeout. One thread
// per appliance, asleep unless a call is armed.
class ApplianceWatchdog {
 public:
  // `marker`: text in the command line of the appliance's processes, for
  // finding them before their pid is known (during the launch).
  explicit ApplianceWatchdog(std::string marker) : marker_(std::move(marker)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~ApplianceWatchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  ApplianceWatchdog(const ApplianceWatchdog&) = delete;
  ApplianceWatchdog& operator=(const ApplianceWatchdog&) = delete;

  // Arms for one call: `what` is what the appliance is doing, for the
  // message. Calls are serialized by the caller, so one is armed at a time.
  void Arm(std::chrono::milliseconds timeout, std::string what) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      armed_ = true;
      timeout_ = timeout;
      deadline_ = Clock::now() + timeout;
      what_ = std::move(what);
    }
    cv_.notify_all();
  }

  void set_pid(pid_t pid) {
    std::lock_guard<std::mutex> lock(mu_);
    pid_ = pid;
  }
  pid_t pid() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pid_;
  }

  // Non-empty once the watchdog has killed the appliance: why.
  std::string fired() const {
    std::lock_guard<std::mutex> lock(mu_);
    return fired_;
  }

  void Disarm() {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = false;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      if (!armed_) {
        cv_.wait(lock);
        continue;
      }
      if (Clock::now() < deadline_) {
        cv_.wait_until(lock, deadline_);
        continue;
      }
      // Overdue: kill qemu (and anything else of this appliance still
      // starting), then look again every second until the call returns.
      if (fired_.empty()) {
        fired_ = StrCat(
            what_, ": the appliance did not answer within ",
            std::chrono::duration_cast<std::chrono::seconds>(timeout_).count(),
            " s and was stopped");
      }
      std::vector<pid_t> victims;
      if (pid_ > 0) {
        victims.push_back(pid_);
      } else {
        victims = ChildrenMentioning(marker_);
      }
      for (pid_t p : victims) ::kill(p, SIGKILL);
      deadline_ = Clock::now() + std::chrono::seconds(1);
    }
  }

  const std::string marker_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                     // guarded by mu_
  bool armed_ = false;                    // guarded by mu_
  Clock::time_point deadline_;            // guarded by mu_
  std::chrono::milliseconds timeout_{0};  // guarded by mu_
  std::string what_;                      // guarded by mu_
  std::string fired_;                     // guarded by mu_
  pid_t pid_ = -1;                        // guarded by mu_
  std::thread thread_;
};

GuestfsAppliance::ArmScope::ArmScope(GuestfsAppliance* a,
                                     std::chrono::seconds timeout,
                                     std::string what)
    : a_(a) {
  a_->watchdog_->Arm(timeout, std::move(what));
}

GuestfsAppliance::ArmScope::~ArmScope() { a_->watchdog_->Disarm(); }

StatusOr<std::unique_ptr<GuestfsAppliance>> GuestfsAppliance::Launch(
    const GuestfsApplianceOptions& options) {
  if (options.drives.empty()) {
    return absl::InvalidArgumentError("libguestfs: no drive to attach");
  }
  for (const GuestfsDrive& d : options.drives) {
    if (d.path.empty() == d.nbd_socket.empty()) {
      return absl::InvalidArgumentError(
          "libguestfs: a drive needs exactly one of a path and an NBD socket");
    }
  }
  if (options.launch_timeout.count() <= 0 ||
      options.call_timeout.count() <= 0) {
    return absl::InvalidArgumentError(
        "libguestfs: launch_timeout and call_timeout must be positive");
  }
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<TempDir> tmpdir,
                         TempDir::Create("cairn-guestfs"));
  std::unique_ptr<GuestfsAppliance> a(
      new GuestfsAppliance(options, std::move(tmpdir)));
  CAIRN_RETURN_IF_ERROR(a->Start());
  return a;
}

GuestfsAppliance::GuestfsAppliance(const GuestfsApplianceOptions& options,
                                   std::unique_ptr<TempDir> tmpdir)
    : options_(options),
      tmpdir_(std::move(tmpdir)),
      watchdog_(std::make_unique<ApplianceWatchdog>(tmpdir_->path())) {}

GuestfsAppliance::~GuestfsAppliance() {
  if (g_ != nullptr) {
    {
      ArmScope scope(this, kShutdownTimeout, "shutting the appliance down");
      if (!shut_down_ && guestfs_is_ready(g_) > 0) guestfs_shutdown(g_);
      guestfs_close(g_);
    }
    g_ = nullptr;
  }
  watchdog_.reset();
}

pid_t GuestfsAppliance::pid() const {
  return Alive().ok() ? watchdog_->pid() : -1;
}

Status GuestfsAppliance::Shutdown() {
  if (shut_down_) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(Alive());
  int r = Call(
      "shutting the appliance down", [&] { return guestfs_shutdown(g_); },
      kShutdownTimeout);
  shut_down_ = true;
  if (r == -1 || !watchdog_->fired().empty()) {
    return Fail("shutting the appliance down (syncing its disks)");
  }
  return absl::OkStatus();
}

Status GuestfsAppliance::Alive() const {
  std::string fired = watchdog_->fired();
  if (!fired.empty()) return absl::UnavailableError(PrintableUtf8(fired));
  if (shut_down_) {
    return absl::UnavailableError("the libguestfs appliance was shut down");
  }
  if (g_ == nullptr || guestfs_is_ready(g_) <= 0) {
    return absl::UnavailableError(
        "the libguestfs appliance is not running (it exited or crashed)");
  }
  return absl::OkStatus();
}

Status GuestfsAppliance::Error(absl::StatusCode code,
                               std::string_view what) const {
  std::string message = LastError();
  Status alive = Alive();
  if (!alive.ok()) {
    return absl::UnavailableError(StrCat(what, ": ", ToStd(alive.message()),
                                         message.empty() ? "" : " (", message,
                                         message.empty() ? "" : ")"));
  }
  return Status(code, StrCat(what, ": ", message));
}

std::string GuestfsAppliance::LastError() const {
  const char* e = g_ != nullptr ? guestfs_last_error(g_) : nullptr;
  return e != nullptr ? PrintableUtf8(e) : std::string("unknown error");
}

int GuestfsAppliance::LastErrno() const {
  return g_ != nullptr ? guestfs_last_errno(g_) : 0;
}

Status GuestfsAppliance::Fail(std::string_view what) const {
  std::string fired = watchdog_->fired();
  if (!fired.empty()) {
    return absl::UnavailableError(StrCat("libguestfs: ", PrintableUtf8(fired)));
  }
  return absl::UnavailableError(
      StrCat("libguestfs: ", what, ": ", LastError()));
}

Status GuestfsAppliance::Start() {
  g_ = guestfs_create();
  if (g_ == nullptr) {
    return absl::UnavailableError(
        "libguestfs: cannot create a handle (guestfs_create failed)");
  }
  // Errors are reported through guestfs_last_error, not printed.
  guestfs_set_error_handler(g_, nullptr, nullptr);
  if (::getenv("LIBGUESTFS_BACKEND") == nullptr &&
      guestfs_set_backend(g_, "direct") == -1) {
    return Fail("selecting the direct backend");
  }
  if (::getenv("LIBGUESTFS_BACKEND_SETTINGS") == nullptr && !KvmUsable()) {
    char force_tcg[] = "force_tcg";
    char* settings[] = {force_tcg, nullptr};
    if (guestfs_set_backend_settings(g_, settings) == -1) {
      return Fail("selecting TCG (no usable /dev/kvm)");
    }
  }
  if (guestfs_set_tmpdir(g_, tmpdir_->path().c_str()) == -1) {
    return Fail("setting the temporary directory");
  }
  if (options_.memsize_mib > 0 &&
      guestfs_set_memsize(g_, options_.memsize_mib) == -1) {
    return Fail(
        StrCat("setting the memory size to ", options_.memsize_mib, " MiB"));
  }
  guestfs_set_autosync(g_, options_.autosync ? 1 : 0);
  guestfs_set_identifier(g_, options_.identifier.c_str());
  for (const GuestfsDrive& d : options_.drives) {
    int r;
    if (!d.nbd_socket.empty()) {
      std::string server = StrCat("unix:", d.nbd_socket);
      char* servers[] = {server.data(), nullptr};
      r = guestfs_add_drive_opts(g_, "", GUESTFS_ADD_DRIVE_OPTS_READONLY,
                                 d.readonly ? 1 : 0,
                                 GUESTFS_ADD_DRIVE_OPTS_FORMAT,
                                 d.format.empty() ? "raw" : d.format.c_str(),
                                 GUESTFS_ADD_DRIVE_OPTS_PROTOCOL, "nbd",
                                 GUESTFS_ADD_DRIVE_OPTS_SERVER, servers, -1);
    } else if (!d.format.empty()) {
      r = guestfs_add_drive_opts(
          g_, d.path.c_str(), GUESTFS_ADD_DRIVE_OPTS_READONLY,
          d.readonly ? 1 : 0, GUESTFS_ADD_DRIVE_OPTS_FORMAT, d.format.c_str(),
          -1);
    } else {
      r = guestfs_add_drive_opts(g_, d.path.c_str(),
                                 GUESTFS_ADD_DRIVE_OPTS_READONLY,
                                 d.readonly ? 1 : 0, -1);
    }
    if (r == -1) {
      return Fail(StrCat("adding the drive ",
                         d.nbd_socket.empty() ? d.path : d.nbd_socket,
                         d.readonly ? " read-only" : " read-write"));
    }
  }
  int launched;
  {
    ArmScope scope(this, options_.launch_timeout, "launching the appliance");
    launched = guestfs_launch(g_);
  }
  if (launched == -1 || !watchdog_->fired().empty()) {
    return Fail("launching the appliance");
  }
  int pid = guestfs_get_pid(g_);
  if (pid > 0) watchdog_->set_pid(pid);
  return absl::OkStatus();
}

std::vector<std::string> TakeGuestfsStrings(char** v) {
  std::vector<std::string> out;
  if (v == nullptr) return out;
  for (char** p = v; *p != nullptr; ++p) {
    out.emplace_back(*p);
    free(*p);
  }
  free(v);
  return out;
}

std::string TakeGuestfsString(char* s) {
  if (s == nullptr) return "";
  std::string out(s);
  free(s);
  return out;
}

std::vector<char*> GuestfsStringArray(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace cairn
