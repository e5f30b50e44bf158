// QemuCommand: the QEMU command line that boots a disk on a HardwareModel.
//
// Always q35 under TCG (`accel=tcg -cpu max`; KVM aborts on Cairn's build
// machines), no display, no reboot (a guest reboot ends QEMU), the first
// serial port and the firmware debug port (0x402, where SeaBIOS prints
// "Booting from ..." / "No bootable device") written to files, user-mode
// networking restricted from the outside world, and NIC option ROMs
// disabled so firmware never tries PXE. The disk gets bootindex=0.
#ifndef CAIRN_TESTS_BOOT_QEMU_COMMAND_H_
#define CAIRN_TESTS_BOOT_QEMU_COMMAND_H_

#include <string>
#include <vector>

#include "hardware_model.h"

namespace cairn::boot {

struct QemuPaths {
  std::string qemu_binary = "qemu-system-x86_64";
  std::string disk;          // the disk QEMU opens read-write (an overlay)
  std::string disk_format;   // "qcow2", "raw", ...
  std::string serial_log;    // first serial port (ttyS0) goes here
  std::string firmware_log;  // isa-debugcon at 0x402 goes here
  // UEFI only: read-only code image and a writable per-boot copy of VARS.
  std::string ovmf_code;
  std::string ovmf_vars;
};

// Returns argv (argv[0] is paths.qemu_binary). Pure function.
// REQUIRES: ValidateHardwareModel(model).ok(); paths.disk, serial_log and
// firmware_log non-empty; ovmf_code and ovmf_vars non-empty for kUefi.
std::vector<std::string> BuildQemuArgv(const HardwareModel& model,
                                       const QemuPaths& paths);

}  // namespace cairn::boot

#endif  // CAIRN_TESTS_BOOT_QEMU_COMMAND_H_
