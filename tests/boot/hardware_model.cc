#include "hardware_model.h"

#include <cctype>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cairn::boot {
namespace {

// This Abseil build has its own absl::string_view (not std::string_view).
absl::string_view AV(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

std::string_view FirmwareName(Firmware firmware) {
  switch (firmware) {
    case Firmware::kBios:
      return "bios";
    case Firmware::kUefi:
      return "uefi";
  }
  return "unknown";
}

std::string_view DiskBusName(DiskBus bus) {
  switch (bus) {
    case DiskBus::kAhci:
      return "ahci";
    case DiskBus::kVirtioBlk:
      return "virtio-blk";
    case DiskBus::kVirtioScsi:
      return "virtio-scsi";
    case DiskBus::kNvme:
      return "nvme";
  }
  return "unknown";
}

std::string_view NicModelName(NicModel nic) {
  switch (nic) {
    case NicModel::kNone:
      return "none";
    case NicModel::kE1000:
      return "e1000";
    case NicModel::kVirtioNet:
      return "virtio-net";
  }
  return "unknown";
}

absl::StatusOr<Firmware> ParseFirmware(std::string_view name) {
  for (Firmware f : {Firmware::kBios, Firmware::kUefi}) {
    if (name == FirmwareName(f)) return f;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown firmware '", AV(name), "' (bios, uefi)"));
}

absl::StatusOr<DiskBus> ParseDiskBus(std::string_view name) {
  for (DiskBus b : {DiskBus::kAhci, DiskBus::kVirtioBlk, DiskBus::kVirtioScsi,
                    DiskBus::kNvme}) {
    if (name == DiskBusName(b)) return b;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown disk bus '", AV(name),
                   "' (ahci, virtio-blk, virtio-scsi, nvme)"));
}

absl::StatusOr<NicModel> ParseNicModel(std::string_view name) {
  for (NicModel n : {NicModel::kNone, NicModel::kE1000, NicModel::kVirtioNet}) {
    if (name == NicModelName(n)) return n;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown NIC model '", AV(name), "' (none, e1000, virtio-net)"));
}

absl::StatusOr<uint64_t> ParseSize(std::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(AV(text));
  size_t digits = 0;
  while (digits < t.size() && absl::ascii_isdigit(t[digits])) ++digits;
  uint64_t value = 0;
  if (digits == 0 || !absl::SimpleAtoi(t.substr(0, digits), &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad size '", AV(text), "'"));
  }
  std::string suffix = absl::AsciiStrToLower(t.substr(digits));
  int shift = 0;
  if (suffix.empty() || suffix == "b") {
    shift = 0;
  } else if (suffix == "k" || suffix == "kib") {
    shift = 10;
  } else if (suffix == "m" || suffix == "mib") {
    shift = 20;
  } else if (suffix == "g" || suffix == "gib") {
    shift = 30;
  } else if (suffix == "t" || suffix == "tib") {
    shift = 40;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("bad size suffix in '", AV(text), "' (K, M, G, T)"));
  }
  if (shift > 0 && value > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return absl::InvalidArgumentError(
        absl::StrCat("size too large: ", AV(text)));
  }
  return value << shift;
}

namespace {

bool IsValidUnicastMac(std::string_view mac) {
  std::vector<absl::string_view> parts = absl::StrSplit(AV(mac), ':');
  if (parts.size() != 6) return false;
  for (absl::string_view p : parts) {
    if (p.size() != 2 || !absl::ascii_isxdigit(p[0]) ||
        !absl::ascii_isxdigit(p[1])) {
      return false;
    }
  }
  int first = std::stoi(std::string(parts[0]), nullptr, 16);
  return (first & 1) == 0;  // multicast bit clear
}

}  // namespace

absl::Status ValidateHardwareModel(const HardwareModel& model) {
  if (model.nic != NicModel::kNone && !IsValidUnicastMac(model.mac)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad MAC '", model.mac, "' (want xx:xx:xx:xx:xx:xx, unicast)"));
  }
  if (model.cpus < 1 || model.cpus > 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("cpus must be 1..16, got ", model.cpus));
  }
  if (model.memory_mib < 256 || model.memory_mib > 16384) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory must be 256..16384 MiB, got ", model.memory_mib));
  }
  if (model.disk_size_bytes.has_value() && *model.disk_size_bytes == 0) {
    return absl::InvalidArgumentError("disk size must be > 0");
  }
  return absl::OkStatus();
}

}  // namespace cairn::boot
