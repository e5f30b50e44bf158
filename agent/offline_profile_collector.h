// The offline hardware-profile collector: builds a v1::HardwareProfile from
// a disk image (raw, qcow2, ... anything qemu reads) through libguestfs
// inspection, with no machine running it (DESIGN.md section 5; issue 5).
//
// How: the image is added READ-ONLY to a libguestfs appliance, the
// operating system is found with guestfs_inspect_os and its file systems
// (root, /boot, /boot/efi, any other the inspection reports) are mounted
// read-only. The small files the live collector reads - /etc (os-release,
// hostname, fstab, crypttab, network configuration, grub defaults, enabled
// systemd units), /boot (kernel names, grub.cfg, each initrd.img-VERSION),
// /boot/efi/EFI, /lib/modules/VERSION/modules.{dep,alias,builtin,
// builtin.modinfo,softdep} and /var/lib/dpkg/status - are downloaded as
// plain regular files into a private temporary tree (guest symlinks are
// followed inside the appliance, never on the host; entry names are checked
// and every file is size-bounded). The live collector
// (agent/profile_collector.h) then reads that tree with
// read_machine_state = false, so the parsing is the same code.
//
// What the image itself tells is added from the appliance: each disk's
// size, sector sizes, partition table type and GUID, and partitions (start,
// size, type, file system type/UUID/label); and the boot mode from the
// partition table (GPT with an EFI System Partition, or an MBR partition of
// type 0xef: UEFI; otherwise BIOS).
//
// Not known offline and left empty: CPU, memory, platform, PCI devices,
// NICs (hardware), the running kernel, its command line and loaded modules,
// BIOS vendor/version; Secure Boot state is SECURE_BOOT_UNKNOWN for UEFI.
// Disk names are the appliance's ("sda"), which a warning says. The profile
// says where it came from: collected_from = "image:PATH".
//
// Errors (every one names the image): NotFound when the image does not
// exist; FailedPrecondition ("no operating system found") when inspection
// finds none; Internal with guestfs_last_error for a libguestfs failure;
// the live collector's errors for damaged files inside the image.
//
// Environment: libguestfs reads LIBGUESTFS_BACKEND and friends; on machines
// without usable KVM set LIBGUESTFS_BACKEND=direct and
// LIBGUESTFS_BACKEND_SETTINGS=force_tcg. One call launches one appliance
// (about 20-25 s under TCG).
//
// Thread safety: no shared state; calls may run concurrently (each uses its
// own libguestfs handle and temporary directory).
#ifndef CAIRN_AGENT_OFFLINE_PROFILE_COLLECTOR_H_
#define CAIRN_AGENT_OFFLINE_PROFILE_COLLECTOR_H_

#include <cstdint>
#include <string>

#include "cairn/v1/profile.pb.h"
#include "common/status.h"

namespace cairn {

struct OfflineCollectOptions {
  // Image format for qemu ("raw", "qcow2", ...); empty means auto-detect.
  std::string format;
  // As CollectOptions.
  bool record_module_indices = true;
  bool read_initramfs = true;
  int64_t collected_unix_us = 0;
  // Where the temporary tree is created; empty means $TMPDIR or /tmp. The
  // tree is removed before the call returns.
  std::string temp_dir;
};

StatusOr<v1::HardwareProfile> CollectOfflineProfile(
    const std::string& image_path, const OfflineCollectOptions& options);

}  // namespace cairn

#endif  // CAIRN_AGENT_OFFLINE_PROFILE_COLLECTOR_H_
