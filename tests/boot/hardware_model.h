// HardwareModel: the virtual machine a boot check boots a disk on.
//
// A HardwareModel names the parts of a machine that decide whether a restored
// disk boots: firmware (BIOS or UEFI), the disk controller the boot disk sits
// on, the disk's size, and the first NIC (model and MAC). The boot check turns
// it into a QEMU q35 command line (see qemu_command.h); restore tests use it
// to describe "the target's hardware".
//
// Fixed PCI placement, so guest device names are stable across runs: the NIC
// is at 00:02.0 (systemd names it enp0s2), a PCI disk controller (virtio-blk,
// virtio-scsi, NVMe) at 00:03.0; AHCI is q35's built-in ICH9 controller at
// 00:1f.2.
//
// Plain value type; thread-compatible.
#ifndef CAIRN_TESTS_BOOT_HARDWARE_MODEL_H_
#define CAIRN_TESTS_BOOT_HARDWARE_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn::boot {

enum class Firmware { kBios, kUefi };
enum class DiskBus { kAhci, kVirtioBlk, kVirtioScsi, kNvme };
enum class NicModel { kNone, kE1000, kVirtioNet };

struct HardwareModel {
  Firmware firmware = Firmware::kBios;
  DiskBus disk_bus = DiskBus::kAhci;
  // When set, the disk the guest sees has this virtual size (bytes). It must
  // be at least the image's size; the image itself is never modified (the
  // boot check boots a qcow2 overlay whose virtual size is grown).
  std::optional<uint64_t> disk_size_bytes;
  NicModel nic = NicModel::kE1000;
  // Lower-case colon form, e.g. "52:54:00:12:34:56". Ignored for kNone.
  std::string mac = "52:54:00:12:34:56";
  int cpus = 2;
  int memory_mib = 1024;
};

// Names used on command lines and in JSON: "bios"/"uefi";
// "ahci"/"virtio-blk"/"virtio-scsi"/"nvme"; "none"/"e1000"/"virtio-net".
std::string_view FirmwareName(Firmware firmware);
std::string_view DiskBusName(DiskBus bus);
std::string_view NicModelName(NicModel nic);

// Inverse of the *Name functions. InvalidArgument for an unknown name.
absl::StatusOr<Firmware> ParseFirmware(std::string_view name);
absl::StatusOr<DiskBus> ParseDiskBus(std::string_view name);
absl::StatusOr<NicModel> ParseNicModel(std::string_view name);

// Parses a size such as "4G", "4GiB", "512M", "2147483648" (binary units;
// "G" and "GiB" both mean 2^30). InvalidArgument on malformed input.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

// OK when `model` can be booted: a valid unicast MAC when a NIC is present,
// 1..16 CPUs, 256..16384 MiB of memory. InvalidArgument otherwise.
absl::Status ValidateHardwareModel(const HardwareModel& model);

}  // namespace cairn::boot

#endif  // CAIRN_TESTS_BOOT_HARDWARE_MODEL_H_
