// InstantBoot: a virtual machine started straight from a backup's NBD export
// with a local qcow2 overlay, while QEMU copies every block of the backup
// into the overlay in the background, so that the machine ends up running
// from the local disk alone (DESIGN.md section 5, "Delivery"; issue 6;
// docs/instant-boot.md).
//
// RunInstantBoot():
//   1. checks the options (nothing is created or started if they are bad;
//      an existing overlay is refused unless `overwrite`);
//   2. serves the backup (or customized image) read-only over NBD with
//      NbdExport (media_agent/nbd_export.h): nbdkit with Cairn's plugin,
//      which takes the store lock for as long as it runs (a store held by a
//      running `cairn-media serve` is refused with FailedPrecondition), the
//      data key handed over through a pipe, the socket in a private
//      directory (mode 0700);
//   3. creates the overlay `qemu-img create -f qcow2 -F raw -b NBD-URI` under
//      a temporary name next to it, mode 0600 (it will hold the decrypted
//      disk), fsyncs and renames it into place;
//   4. starts `qemu-system-x86_64 -machine q35,accel=tcg -cpu max -S
//      -no-shutdown` with the overlay as its only disk (block node
//      kDiskNode), QMP on a socket in the private directory;
//   5. over QMP: `block-stream` of kDiskNode with no base (job kStreamJob),
//      then `cont` - the guest boots from overlay + export while QEMU copies
//      the export into the overlay; progress from query-block-jobs;
//   6. on BLOCK_JOB_COMPLETED without error QEMU has removed the backing file
//      from the overlay's header (checked with query-named-block-nodes), and
//      the export is stopped: from then on the VM runs from the overlay alone
//      and the store is no longer locked;
//   7. waits until the VM is over: the guest powers off (QEMU runs with
//      -no-shutdown, so a guest that powers off before the copy is done
//      leaves QEMU running until the copy completes, then QEMU is told to
//      quit), QEMU exits by itself, or `stop_requested` returns true (QMP
//      `quit`; SIGKILL if QEMU is not gone after 30 s);
//   8. stops the export if it still runs, fsyncs the overlay and, after a
//      successful copy, checks with `qemu-img info` that it has no backing
//      file.
//
// Stream errors (a damaged chunk, nbdkit gone): the VM keeps running on
// overlay + export (the guest sees the read error only for the block that
// failed), the error is reported through `on_event` at once, the export is
// kept until the VM is over, and RunInstantBoot then returns the error (with
// QEMU's message, and the plugin's code when nbdkit logged one). The overlay
// then still depends on the backup: its backing file names the NBD socket,
// which is gone once this call returns.
//
// Reboots inside the guest are ordinary resets; the VM keeps running.
//
// Thread safety: RunInstantBoot() blocks until the VM is over and calls
// `progress`, `on_event` and `stop_requested` from the calling thread. nbdkit
// runs with --exit-with-parent, so the calling thread must live until it
// returns (it does). Several instant boots may run at once (distinct
// overlays; but each takes the store lock while its export runs, so not on
// the same store at the same time).
#ifndef CAIRN_MEDIA_AGENT_INSTANT_BOOT_H_
#define CAIRN_MEDIA_AGENT_INSTANT_BOOT_H_

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "common/data_key.h"
#include "common/status.h"

namespace cairn {

struct InstantBootOptions {
  std::string store;      // repository directory (required)
  std::string backup_id;  // backup or customized image (required)
  // The store's data key when the image is encrypted. Not owned; only its
  // secret is written into nbdkit's key pipe.
  const DataKey* key = nullptr;
  // The qcow2 overlay to create (required). Its directory must exist. The
  // VM's disk: after a successful copy a self-contained image.
  std::string overlay;
  // Replace an existing overlay (and UEFI variable store). Without it:
  // AlreadyExists before anything starts.
  bool overwrite = false;

  int memory_mib = 2048;            // 256..1048576
  int cpus = 2;                     // 1..64
  std::string firmware = "bios";    // "bios" or "uefi" (OVMF)
  std::string disk_bus = "virtio";  // "virtio", "ahci" or "nvme"
  std::string nic = "virtio";  // "virtio", "e1000" or "none" (user network)
  // Limit of the background copy, bytes per second (QMP block-stream
  // "speed"); 0: as fast as the host allows.
  uint64_t copy_bytes_per_second = 0;
  // The guest's first serial port (ttyS0) is written to this file (created
  // or truncated); empty: discarded.
  std::string serial_log;

  // UEFI only: the firmware image (read-only) and the template of the
  // variable store. The VM's variable store is OVERLAY.vars.fd, a copy of
  // the template made next to the overlay (kept with it: a permanent VM
  // keeps its boot entries).
  std::string ovmf_code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
  std::string ovmf_vars_template = "/usr/share/OVMF/OVMF_VARS_4M.fd";

  // Parent of the private directory (NBD and QMP sockets, nbdkit's and
  // QEMU's logs); empty: $TMPDIR or /tmp. Holds no disk data.
  std::string runtime_dir;
  std::string qemu_path;      // empty: qemu-system-x86_64 on $PATH
  std::string qemu_img_path;  // empty: qemu-img on $PATH
  std::string nbdkit_path;    // passed to NbdExport (empty: its default)
  std::string plugin_path;    // passed to NbdExport (empty: its default)

  // Bytes of the disk copied into the overlay so far and the disk's size,
  // about once a second while the copy runs; (size, size) once it is done.
  std::function<void(uint64_t done, uint64_t total)> progress;
  // Milestones, as they happen: the name and details (a JSON object):
  //   "export-started"   {"uri", "backup_id"}
  //   "vm-started"       {"pid", "overlay", "firmware", "disk_bus", "nic",
  //                       "memory_mib"}
  //   "stream-started"   {"job", "node", "speed"}
  //   "stream-complete"  {"bytes", "seconds"}: the overlay is self-contained
  //   "export-stopped"   {}
  //   "stream-error"     {"message"}
  //   "guest-shutdown"   {"stream_running"}: the guest powered off
  //   "stop-requested"   {}
  //   "vm-exited"        {"status"}: QEMU's wait status, described
  std::function<void(std::string_view name, const nlohmann::json& details)>
      on_event;
  // Polled about twice a second; once true, the VM is told to quit.
  std::function<bool()> stop_requested;
};

struct InstantBootResult {
  std::string overlay;    // absolute path
  std::string vars_file;  // UEFI: the VM's variable store; else empty
  std::string backup_id;
  uint64_t virtual_size = 0;     // the disk's size as the guest sees it
  bool stream_complete = false;  // the overlay is self-contained
  uint64_t streamed_bytes = 0;   // the job's final offset
  double stream_seconds = 0;     // block-stream start to completion
  double vm_seconds = 0;         // QEMU start to exit
  double seconds = 0;            // the whole call
  // How the VM ended: "guest powered off", "stopped on request",
  // "QEMU exited: <wait status>".
  std::string vm_end;
};

// Errors, before anything is created or started:
//   InvalidArgument  bad firmware/disk bus/NIC name, memory or cpus out of
//                    range, empty store/backup/overlay, overlay a directory;
//   NotFound         the overlay's directory does not exist; qemu-system-
//                    x86_64 or qemu-img missing; OVMF missing (uefi);
//   AlreadyExists    the overlay (or OVERLAY.vars.fd) exists, !overwrite;
// then NbdExport::Start's (NotFound for an unknown backup,
// FailedPrecondition for a missing or wrong key or a locked store, DataLoss
// for a damaged manifest); Internal when qemu-img create, QEMU's start or a
// QMP command fails (with their messages). Those leave no overlay behind
// (with `overwrite`, an existing overlay is replaced once the new one has
// been created, just before QEMU starts). After the VM has started:
//   Cancelled        stopped on request before the copy completed;
//   the stream's error (the plugin's code from nbdkit's log, e.g. DataLoss,
//                    else Internal) when the copy failed;
//   Internal         QEMU exited before the copy completed, or the overlay
//                    still has a backing file afterwards.
// In these cases the overlay stays (it holds the guest's writes) but still
// depends on the backup. OK means the copy completed: the overlay is a
// self-contained qcow2, however the VM ended.
StatusOr<InstantBootResult> RunInstantBoot(const InstantBootOptions& options);

// --- Exposed for tests -------------------------------------------------------

// The QEMU block node of the VM's disk and the id of the copy job.
inline constexpr std::string_view kDiskNode = "cairn-disk";
inline constexpr std::string_view kStreamJob = "cairn-stream";

struct InstantBootVm {
  std::string qemu;
  std::string overlay;
  std::string qmp_socket;
  std::string serial_log;  // empty: -serial null
  std::string vars_file;   // uefi only
};

// QEMU's argument vector (argv[0] = vm.qemu), -S and -no-shutdown included.
// REQUIRES: the options passed the checks above.
std::vector<std::string> BuildInstantBootQemuArgv(
    const InstantBootOptions& options, const InstantBootVm& vm);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_INSTANT_BOOT_H_
