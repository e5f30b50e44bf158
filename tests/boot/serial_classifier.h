// SerialClassifier: decides how far a boot got from its console output.
//
// Fed the guest's serial console text (and the firmware debug log) as it
// arrives, in arbitrary pieces. It reports a decision as soon as the text
// settles the outcome, so a caller can stop QEMU early:
//   kMarkerReached     a line containing the expected marker (e.g.
//                      "CAIRN-BOOT-OK debian-bios-ahci") appeared.
//   kStuckInInitramfs  the initramfs gave up on the root device: "Gave up
//                      waiting for root", "ALERT!", or the "(initramfs)"
//                      shell prompt.
//   kBootLoaderFailure the firmware or GRUB could not start a kernel:
//                      "No bootable device", "grub rescue>", GRUB's
//                      interactive prompt, OVMF's UEFI shell or "No
//                      bootable option". Also the verdict at the end when no
//                      kernel ever printed (see Finish).
//   kKernelPanic       "Kernel panic - not syncing" (e.g. no initramfs).
// Without a decisive line, Finish() gives the verdict when QEMU ends or the
// deadline passes:
//   no kernel output at all           -> kBootLoaderFailure
//   kernel ran, deadline passed       -> kTimeout
//   kernel ran, QEMU exited by itself -> kGuestExited (powered off or
//                                        rebooted without the marker)
// GRUB "error:" lines before the kernel are remembered as evidence but are
// not decisive (GRUB often continues past them).
//
// Lines "CAIRN-INFO key=value" are collected into info() (the fixture's
// marker unit prints kernel, firmware, root device and IPv4 addresses).
//
// Thread-compatible; one instance per boot.
#ifndef CAIRN_TESTS_BOOT_SERIAL_CLASSIFIER_H_
#define CAIRN_TESTS_BOOT_SERIAL_CLASSIFIER_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace cairn::boot {

enum class BootOutcome {
  kMarkerReached,
  kStuckInInitramfs,
  kBootLoaderFailure,
  kKernelPanic,
  kTimeout,
  kGuestExited,
};

// "marker_reached", "stuck_in_initramfs", "boot_loader_failure",
// "kernel_panic", "timeout", "guest_exited".
std::string_view BootOutcomeName(BootOutcome outcome);

struct Verdict {
  BootOutcome outcome;
  std::string evidence;  // the deciding line, or why none was found
};

class SerialClassifier {
 public:
  // `marker`: the text whose appearance on a console line means success.
  // REQUIRES: !marker.empty().
  explicit SerialClassifier(std::string marker);

  // Appends serial console text. Returns the verdict once it is decided
  // (and the same verdict on every later call).
  std::optional<Verdict> FeedSerial(std::string_view text);

  // Appends firmware debug-port text (SeaBIOS messages). Same return.
  std::optional<Verdict> FeedFirmware(std::string_view text);

  // The verdict when no more text will come. `deadline_passed` says whether
  // the caller gave up (true) or QEMU exited on its own (false). Returns the
  // decided verdict if there is one. Flushes any unterminated last line.
  Verdict Finish(bool deadline_passed);

  // True once the Linux kernel printed its banner ("Linux version").
  bool kernel_started() const { return kernel_started_; }
  const std::map<std::string, std::string>& info() const { return info_; }

 private:
  void ScanSerialLine(std::string_view line);
  void ScanFirmwareLine(std::string_view line);

  std::string marker_;
  std::string serial_partial_;
  std::string firmware_partial_;
  bool kernel_started_ = false;
  std::string first_loader_error_;
  std::optional<Verdict> verdict_;
  std::map<std::string, std::string> info_;
};

}  // namespace cairn::boot

#endif  // CAIRN_TESTS_BOOT_SERIAL_CLASSIFIER_H_
