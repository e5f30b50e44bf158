// cairn-boot-check: boots a disk image under QEMU (TCG) on a chosen hardware
// model and reports whether it reached its boot marker.
//
//   cairn-boot-check --disk IMG [--format raw] [--firmware bios|uefi]
//       [--bus ahci|virtio-blk|virtio-scsi|nvme] [--disk-size 4G]
//       [--nic e1000|virtio-net|none] [--mac 52:54:00:12:34:56]
//       [--cpus 2] [--memory 1024] [--marker TEXT] [--timeout SECONDS]
//       [--stall-timeout SECONDS] [--work-dir DIR] [--keep-disk] [--json]
//
// Exit status: 0 marker reached, 1 any other outcome, 2 usage or setup error.
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "boot_check.h"
#include "nlohmann/json.hpp"

namespace {

using cairn::boot::BootCheck;
using cairn::boot::BootOutcomeName;
using cairn::boot::BootRequest;
using cairn::boot::BootResult;

constexpr char kUsage[] =
    "usage: cairn-boot-check --disk IMG [--format raw|qcow2|...]\n"
    "         [--firmware bios|uefi] [--bus ahci|virtio-blk|virtio-scsi|nvme]\n"
    "         [--disk-size SIZE] [--nic e1000|virtio-net|none] [--mac MAC]\n"
    "         [--cpus N] [--memory MiB] [--marker TEXT] [--timeout SECONDS]\n"
    "         [--stall-timeout SECONDS] [--work-dir DIR] [--keep-disk]\n"
    "         [--json]\n"
    "exit: 0 marker reached, 1 other outcome, 2 usage/setup error\n";

int Usage(std::string_view error) {
  if (!error.empty()) std::cerr << "cairn-boot-check: " << error << "\n";
  std::cerr << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  BootRequest req;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--json") {
      json = true;
    } else if (arg == "--keep-disk") {
      req.keep_disk = true;
    } else {
      const char* v = value();
      if (v == nullptr)
        return Usage(std::string("missing value for ") + std::string(arg));
      if (arg == "--disk") {
        req.disk_path = v;
      } else if (arg == "--format") {
        req.disk_format = v;
      } else if (arg == "--firmware") {
        auto f = cairn::boot::ParseFirmware(v);
        if (!f.ok()) return Usage(std::string(f.status().message()));
        req.hardware.firmware = *f;
      } else if (arg == "--bus") {
        auto b = cairn::boot::ParseDiskBus(v);
        if (!b.ok()) return Usage(std::string(b.status().message()));
        req.hardware.disk_bus = *b;
      } else if (arg == "--nic") {
        auto n = cairn::boot::ParseNicModel(v);
        if (!n.ok()) return Usage(std::string(n.status().message()));
        req.hardware.nic = *n;
      } else if (arg == "--mac") {
        req.hardware.mac = v;
      } else if (arg == "--disk-size") {
        auto s = cairn::boot::ParseSize(v);
        if (!s.ok()) return Usage(std::string(s.status().message()));
        req.hardware.disk_size_bytes = *s;
      } else if (arg == "--cpus") {
        if (!absl::SimpleAtoi(v, &req.hardware.cpus))
          return Usage("bad --cpus");
      } else if (arg == "--memory") {
        if (!absl::SimpleAtoi(v, &req.hardware.memory_mib)) {
          return Usage("bad --memory");
        }
      } else if (arg == "--marker") {
        req.marker = v;
      } else if (arg == "--timeout") {
        double secs = 0;
        if (!absl::SimpleAtod(v, &secs) || secs <= 0) {
          return Usage("bad --timeout");
        }
        req.timeout = absl::Seconds(secs);
      } else if (arg == "--stall-timeout") {
        double secs = 0;
        if (!absl::SimpleAtod(v, &secs) || secs <= 0) {
          return Usage("bad --stall-timeout");
        }
        req.loader_stall_timeout = absl::Seconds(secs);
      } else if (arg == "--work-dir") {
        req.work_dir = v;
      } else {
        return Usage(std::string("unknown option ") + std::string(arg));
      }
    }
  }
  if (req.disk_path.empty()) return Usage("--disk is required");

  absl::StatusOr<BootResult> r = BootCheck(req);
  if (!r.ok()) {
    if (json) {
      nlohmann::json j = {{"error", std::string(r.status().ToString())}};
      std::cout << j.dump(2) << "\n";
    } else {
      std::cerr << "cairn-boot-check: " << r.status() << "\n";
    }
    return 2;
  }
  if (json) {
    nlohmann::json j = {
        {"outcome", std::string(BootOutcomeName(r->outcome))},
        {"reached_marker", r->reached_marker()},
        {"evidence", r->evidence},
        {"kernel_started", r->kernel_started},
        {"elapsed_seconds", absl::ToDoubleSeconds(r->elapsed)},
        {"kernel_started_after_seconds",
         r->kernel_started_after.has_value()
             ? nlohmann::json(absl::ToDoubleSeconds(*r->kernel_started_after))
             : nlohmann::json(nullptr)},
        {"guest_info", r->guest_info},
        {"disk", req.disk_path},
        {"hardware",
         {{"firmware",
           std::string(cairn::boot::FirmwareName(req.hardware.firmware))},
          {"disk_bus",
           std::string(cairn::boot::DiskBusName(req.hardware.disk_bus))},
          {"nic", std::string(cairn::boot::NicModelName(req.hardware.nic))},
          {"mac", req.hardware.mac},
          {"disk_size_bytes",
           req.hardware.disk_size_bytes.has_value()
               ? nlohmann::json(*req.hardware.disk_size_bytes)
               : nlohmann::json(nullptr)}}},
        {"work_dir", r->work_dir},
        {"serial_log", r->serial_log_path},
        {"firmware_log", r->firmware_log_path},
        {"qemu_exit", r->qemu_exit},
        {"qemu_argv", r->qemu_argv},
    };
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("%s after %.1f s: %s\nserial log: %s\n",
                std::string(BootOutcomeName(r->outcome)).c_str(),
                absl::ToDoubleSeconds(r->elapsed), r->evidence.c_str(),
                r->serial_log_path.c_str());
    for (const auto& [k, v] : r->guest_info) {
      std::printf("guest %s=%s\n", k.c_str(), v.c_str());
    }
  }
  return r->reached_marker() ? 0 : 1;
}
