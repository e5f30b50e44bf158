#include "qemu_command.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace cairn::boot {
namespace {

// QEMU's option parser treats ',' as a separator; a literal comma in a path
// is written as ",,".
std::string EscapeOptionValue(const std::string& value) {
  return absl::StrReplaceAll(value, {{",", ",,"}});
}

}  // namespace

std::vector<std::string> BuildQemuArgv(const HardwareModel& model,
                                       const QemuPaths& paths) {
  std::vector<std::string> argv = {
      paths.qemu_binary,
      "-machine",
      "q35,accel=tcg",
      "-cpu",
      "max",
      "-smp",
      absl::StrCat(model.cpus),
      "-m",
      absl::StrCat(model.memory_mib),
      "-display",
      "none",
      "-no-reboot",
      "-no-user-config",
      "-nodefaults",
      "-vga",
      "std",
      "-monitor",
      "none",
      "-chardev",
      absl::StrCat("file,id=cairn_serial,path=",
                   EscapeOptionValue(paths.serial_log)),
      "-serial",
      "chardev:cairn_serial",
      "-chardev",
      absl::StrCat("file,id=cairn_fwlog,path=",
                   EscapeOptionValue(paths.firmware_log)),
      "-device",
      "isa-debugcon,iobase=0x402,chardev=cairn_fwlog",
  };

  if (model.firmware == Firmware::kUefi) {
    argv.insert(argv.end(),
                {"-drive",
                 absl::StrCat("if=pflash,format=raw,unit=0,readonly=on,file=",
                              EscapeOptionValue(paths.ovmf_code)),
                 "-drive",
                 absl::StrCat("if=pflash,format=raw,unit=1,file=",
                              EscapeOptionValue(paths.ovmf_vars))});
  }

  argv.insert(
      argv.end(),
      {"-drive", absl::StrCat("if=none,id=cairn_disk,cache=unsafe,format=",
                              paths.disk_format,
                              ",file=", EscapeOptionValue(paths.disk))});
  switch (model.disk_bus) {
    case DiskBus::kAhci:
      // q35's built-in ICH9 AHCI controller (00:1f.2), first port.
      argv.insert(argv.end(),
                  {"-device", "ide-hd,drive=cairn_disk,bus=ide.0,bootindex=0"});
      break;
    case DiskBus::kVirtioBlk:
      argv.insert(
          argv.end(),
          {"-device", "virtio-blk-pci,drive=cairn_disk,addr=0x3,bootindex=0"});
      break;
    case DiskBus::kVirtioScsi:
      argv.insert(
          argv.end(),
          {"-device", "virtio-scsi-pci,id=cairn_scsi,addr=0x3", "-device",
           "scsi-hd,drive=cairn_disk,bus=cairn_scsi.0,bootindex=0"});
      break;
    case DiskBus::kNvme:
      argv.insert(argv.end(),
                  {"-device",
                   "nvme,drive=cairn_disk,serial=CAIRN0001,addr=0x3,"
                   "bootindex=0"});
      break;
  }

  if (model.nic != NicModel::kNone) {
    const char* device =
        model.nic == NicModel::kE1000 ? "e1000" : "virtio-net-pci";
    argv.insert(argv.end(),
                {"-netdev", "user,id=cairn_net,restrict=on", "-device",
                 absl::StrCat(device, ",netdev=cairn_net,mac=", model.mac,
                              ",addr=0x2,romfile=")});
  }
  return argv;
}

}  // namespace cairn::boot
