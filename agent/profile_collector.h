// The live hardware-profile collector: builds a v1::HardwareProfile from a
// machine's /sys, /proc, /run/udev, /etc, /boot, /lib/modules and
// /var/lib/dpkg under a root directory - "/" on the running system, or a
// recorded tree (tests/data/profiles/SHAPE, see docs/testing-fixtures.md).
// It reads files only; it never runs lspci, udevadm, modinfo or the like.
//
// What it reads, and every field it fills, is listed in
// docs/formats/hardware-profile.md. All file access goes through RootDir,
// so symlinks never lead out of the root, loops end, and every read is
// bounded.
//
// Errors: a malformed or truncated file the profile depends on (cpuinfo,
// a sysfs id, the SecureBoot variable, fstab, an initramfs, ...) fails the
// collection with an error naming the machine path. A missing optional file
// leaves its field empty; oddities that do not make the profile wrong are
// recorded in HardwareProfile.warnings.
//
// Thread safety: CollectHardwareProfile keeps no state between calls; calls
// may run concurrently.
#ifndef CAIRN_AGENT_PROFILE_COLLECTOR_H_
#define CAIRN_AGENT_PROFILE_COLLECTOR_H_

#include <cstdint>
#include <string>

#include "cairn/v1/profile.pb.h"
#include "common/status.h"

namespace cairn {

struct CollectOptions {
  std::string root = "/";
  // Record each kernel's modules.alias/dep/builtin(.modinfo)/softdep in the
  // profile (about 2 MiB per kernel), so the diff can run without the
  // machine.
  bool record_module_indices = true;
  // List the modules in each /boot/initrd.img-VERSION.
  bool read_initramfs = true;
  // Timestamp to record; 0 means now.
  int64_t collected_unix_us = 0;
  // Read the machine's running state under /sys, /proc and /run/udev:
  // firmware, CPU, memory, platform, PCI devices, disks, NICs, the running
  // kernel, its command line and loaded modules. False for a tree that holds
  // only a machine's files (the offline collector's copy of a disk image,
  // agent/offline_profile_collector.h): those fields are left empty and
  // only /etc, /boot, /lib/modules and /var/lib/dpkg are read.
  bool read_machine_state = true;
  // HardwareProfile.collected_from; empty means "live:ROOT".
  std::string collected_from;
};

StatusOr<v1::HardwareProfile> CollectHardwareProfile(
    const CollectOptions& options);

}  // namespace cairn

#endif  // CAIRN_AGENT_PROFILE_COLLECTOR_H_
