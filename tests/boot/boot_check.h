// BootCheck: boots a disk image under QEMU (TCG) on a chosen hardware model
// and reports how far it got.
//
// The disk is never modified: the check creates a qcow2 overlay backed by it
// (grown to HardwareModel::disk_size_bytes when set) in a work directory and
// boots that. UEFI boots use OVMF with a fresh copy of the VARS template, so
// NVRAM starts empty and the firmware boots \EFI\BOOT\BOOTX64.EFI.
//
// The serial console and the firmware debug port are written to files in the
// work directory and scanned as they grow (SerialClassifier); QEMU is waited
// for through a pidfd, so the check returns as soon as the outcome is known
// (the marker line, "Gave up waiting for root", a GRUB prompt, ...) or at the
// deadline. Either way QEMU (only the QEMU this call started) is killed and
// reaped before returning. The serial log is kept for failure reports; the
// overlay and VARS copy are deleted unless keep_disk is set.
//
// Thread-safe for distinct work directories; each call starts its own QEMU.
// On a 2-core TCG machine run one boot at a time.
#ifndef CAIRN_TESTS_BOOT_BOOT_CHECK_H_
#define CAIRN_TESTS_BOOT_BOOT_CHECK_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "hardware_model.h"
#include "serial_classifier.h"

namespace cairn::boot {

struct BootRequest {
  // The disk image to boot, and its format as qemu-img names it ("raw",
  // "qcow2", "vmdk", "vhdx", ...). REQUIRED: disk_path exists.
  std::string disk_path;
  std::string disk_format = "raw";
  HardwareModel hardware;
  // Success is a console line containing this text. The fixtures print
  // "CAIRN-BOOT-OK <image-name>"; pass the full line to make sure the right
  // image booted.
  std::string marker = "CAIRN-BOOT-OK";
  // Wall-clock limit for the boot itself (QEMU start to verdict). A TCG
  // boot of the Debian fixtures takes 30-60 s on 2 cores.
  absl::Duration timeout = absl::Seconds(300);
  // Before the kernel starts, this long without any new serial or firmware
  // output ends the check as kBootLoaderFailure. GRUB's rescue prompt, for
  // one, shows only on the VGA screen when GRUB could not read its config,
  // so silence is all the serial port ever shows. A healthy TCG boot
  // reaches the kernel banner in 8-15 s.
  absl::Duration loader_stall_timeout = absl::Seconds(60);
  // Where the overlay, VARS copy and logs go. Empty: a new directory under
  // $TMPDIR (or /tmp), named cairn-boot.XXXXXX. Created if missing.
  std::string work_dir;
  // Keep the overlay (the booted disk state) after the check.
  bool keep_disk = false;
  std::string qemu_binary = "qemu-system-x86_64";
  std::string qemu_img_binary = "qemu-img";
  std::string ovmf_code_path = "/usr/share/OVMF/OVMF_CODE_4M.fd";
  std::string ovmf_vars_template = "/usr/share/OVMF/OVMF_VARS_4M.fd";
};

struct BootResult {
  BootOutcome outcome = BootOutcome::kTimeout;
  // The console line (or reason) that decided the outcome.
  std::string evidence;
  bool kernel_started = false;
  // "CAIRN-INFO key=value" lines from the guest: kernel, firmware, root,
  // ipv4 (e.g. "enp0s2=192.0.2.10/24").
  std::map<std::string, std::string> guest_info;
  absl::Duration elapsed;  // QEMU start to verdict
  // QEMU start until the kernel banner was seen (firmware + boot loader
  // time, to the poll interval); unset if the kernel never started.
  std::optional<absl::Duration> kernel_started_after;
  std::string work_dir;
  std::string serial_log_path;    // ttyS0 output
  std::string firmware_log_path;  // SeaBIOS debug port output
  std::string qemu_stderr_path;
  std::string qemu_exit;  // "exit 0", "signal 9", ...
  std::vector<std::string> qemu_argv;

  bool reached_marker() const { return outcome == BootOutcome::kMarkerReached; }
  // The last `max_lines` lines of the serial log (ANSI escapes left in),
  // for failure messages. Empty if the log cannot be read.
  std::string SerialTail(int max_lines = 40) const;
};

// Boots request.disk_path on request.hardware and classifies the outcome.
// Errors (nothing was booted, or QEMU itself failed): InvalidArgument for a
// bad request (bad hardware model, disk size smaller than the image),
// NotFound for a missing disk, firmware or binary, Internal when qemu-img or
// QEMU fails before the guest ran (QEMU's stderr is in the message).
absl::StatusOr<BootResult> BootCheck(const BootRequest& request);

}  // namespace cairn::boot

#endif  // CAIRN_TESTS_BOOT_BOOT_CHECK_H_
