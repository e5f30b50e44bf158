// GuestfsAppliance: one libguestfs handle (a small VM with its own kernel
// that reads and edits disk images), launched with Cairn's defaults and
// guarded by a watchdog. Shared by the sandboxed browse path
// (media_agent/sandbox_disk.h) and the restore builder
// (media_agent/image_customizer.h).
//
// Defaults:
//  - backend: LIBGUESTFS_BACKEND / LIBGUESTFS_BACKEND_SETTINGS from the
//    environment when set; otherwise "direct" (qemu run by this process, so
//    it can reach private Unix sockets), plus "force_tcg" when /dev/kvm
//    cannot be opened. The process environment is never modified.
//  - a private temporary directory (mode 0700) under $TMPDIR or /tmp for the
//    appliance's sockets and any overlay libguestfs makes; removed when the
//    appliance is destroyed.
//  - errors are kept (guestfs_last_error), never printed.
//
// Hangs: every call made through Call() runs under a watchdog. A call that
// outlives its timeout (a damaged file system that makes the appliance's
// kernel spin, a guest tool that never returns), or a launch longer than
// `launch_timeout`, gets the appliance's qemu killed (SIGKILL); the call then
// fails, Error() says why, and every later call returns Unavailable.
//
// Thread safety: a libguestfs handle is single-threaded. A GuestfsAppliance
// is thread-compatible: callers serialize every use (Call, g(), Error).
#ifndef CAIRN_MEDIA_AGENT_GUESTFS_APPLIANCE_H_
#define CAIRN_MEDIA_AGENT_GUESTFS_APPLIANCE_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/temp_dir.h"

typedef struct guestfs_h guestfs_h;

namespace cairn {

// One disk of the appliance: a local file, or an NBD export on a Unix
// socket. The appliance sees them as /dev/sda, /dev/sdb, ... in order.
struct GuestfsDrive {
  std::string path;        // image file; empty when nbd_socket is set
  std::string nbd_socket;  // NBD export (protocol nbd, server unix:...)
  std::string format;      // "raw", "qcow2", ...; empty: qemu detects it
  // A read-only drive gets a throw-away overlay in the private directory;
  // nothing is written to the image.
  bool readonly = true;
};

struct GuestfsApplianceOptions {
  std::vector<GuestfsDrive> drives;  // at least one
  // Names the handle in libguestfs's messages and the qemu command line.
  std::string identifier = "cairn";
  std::chrono::seconds launch_timeout{300};
  // Default limit for one Call(); a call may pass its own.
  std::chrono::seconds call_timeout{120};
  // Memory of the appliance VM in MiB; 0: libguestfs's default. Rebuilding
  // an initramfs wants more than the default.
  int memsize_mib = 0;
  // Sync the disks when the handle closes (needed when writing).
  bool autosync = false;
};

class ApplianceWatchdog;  // .cc

class GuestfsAppliance {
 public:
  // Creates the handle, adds the drives and launches the appliance (20-25 s
  // under TCG). InvalidArgument for no drives, a drive with both or neither
  // of path and nbd_socket, or a non-positive timeout; Unavailable with
  // libguestfs's message if the appliance cannot be created or launched (no
  // qemu, no appliance, a refused export) or does not start within
  // `launch_timeout`.
  static StatusOr<std::unique_ptr<GuestfsAppliance>> Launch(
      const GuestfsApplianceOptions& options);

  // Shuts the appliance down (guestfs_shutdown, which syncs when autosync is
  // set, then guestfs_close; the watchdog kills qemu if that takes more than
  // 60 s) and removes the private directory.
  ~GuestfsAppliance();
  GuestfsAppliance(const GuestfsAppliance&) = delete;
  GuestfsAppliance& operator=(const GuestfsAppliance&) = delete;

  guestfs_h* g() const { return g_; }
  // qemu's process id; -1 once the appliance is gone.
  pid_t pid() const;
  const std::string& tmpdir() const { return tmpdir_->path(); }

  // Runs `call` (one appliance call) under the watchdog with the default
  // call timeout, or `timeout` when it is positive.
  template <typename F>
  auto Call(std::string what, F&& call,
            std::chrono::seconds timeout = std::chrono::seconds(0)) {
    ArmScope scope(this, timeout.count() > 0 ? timeout : options_.call_timeout,
                   std::move(what));
    return call();
  }

  // Shuts the appliance down cleanly (syncing written drives) and reports
  // whether that worked; later calls return Unavailable. Writers call it
  // before using what they wrote.
  Status Shutdown();

  // OK while the appliance takes calls; Unavailable once it is gone.
  Status Alive() const;

  // The status of a failed call: Unavailable once the appliance is gone
  // (naming why, and `what`), else `code` with libguestfs's message.
  Status Error(absl::StatusCode code, std::string_view what) const;

  // guestfs_last_error, printable; "unknown error" if there is none.
  std::string LastError() const;
  int LastErrno() const;

 private:
  class ArmScope {
   public:
    ArmScope(GuestfsAppliance* a, std::chrono::seconds timeout,
             std::string what);
    ~ArmScope();
    ArmScope(const ArmScope&) = delete;
    ArmScope& operator=(const ArmScope&) = delete;

   private:
    GuestfsAppliance* a_;
  };

  GuestfsAppliance(const GuestfsApplianceOptions& options,
                   std::unique_ptr<TempDir> tmpdir);
  Status Start();
  Status Fail(std::string_view what) const;

  const GuestfsApplianceOptions options_;
  const std::unique_ptr<TempDir> tmpdir_;  // removed last
  std::unique_ptr<ApplianceWatchdog> watchdog_;
  guestfs_h* g_ = nullptr;
  bool shut_down_ = false;
};

// Helpers for libguestfs's C types.
// Takes ownership of a NULL-terminated string list; empty for NULL.
std::vector<std::string> TakeGuestfsStrings(char** v);
// Takes ownership of a string; "" for NULL.
std::string TakeGuestfsString(char* s);
// A NULL-terminated char* array viewing `v` (valid while `v` lives).
std::vector<char*> GuestfsStringArray(const std::vector<std::string>& v);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_GUESTFS_APPLIANCE_H_
