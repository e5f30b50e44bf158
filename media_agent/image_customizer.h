// ImageCustomizer: carries out a CustomizationPlan (restore_build.proto) on
// a copy-on-write overlay over a backup, so the copy boots on the target
// machine (DESIGN.md section 5; docs/restore-build.md).
//
// The backup itself is never written: the overlay is a qcow2 file in
// `work_dir` whose backing file is the backup's NBD export (or an image
// file), with the target disk's virtual size. A libguestfs appliance
// (media_agent/guestfs_appliance.h) attaches the overlay read-write and,
// in this order:
//   0. shrink: when the target disk is smaller (the overlay then has the
//      base's size), the last partition's ext2/3/4 file system shrinks
//      (e2fsck -f, resize2fs) and the partition ends where the target disk
//      ends (media_agent/disk_shrink.h), when its minimum (resize2fs -P)
//      plus headroom fits; else FailedPrecondition naming the sizes. After
//      step 9 the overlay is cut to the target size (qemu-img resize
//      --shrink) and a GPT's backup header moved to the new end in a short
//      second appliance session ("shrink-disk");
//   1. grow: when the target disk is larger, moves a GPT's backup header to
//      the new end, grows the last partition to fill the disk and its file
//      system with it (ext2/3/4 before mounting, xfs and btrfs mounted);
//   2. mounts the guest's file systems as inspection finds them (fstab);
//      with a boot template attached, an fstab entry that inspection
//      resolves to the template's disk (both made from one image: the same
//      UUIDs) is mounted from the image's partition with that UUID;
//   2a. template-kernel (plan.template_kernel): the boot template's image
//      is the appliance's second drive, read-only; its root file system
//      (and /boot, /usr when separate) is mounted read-only on a temporary
//      directory of the guest, /boot/vmlinuz-KVER (required), config-KVER
//      and System.map-KVER and the whole /lib/modules/KVER are copied
//      (cp -a) into the image, replacing a module tree of the same version,
//      and the guest's `depmod -a KVER` runs; step 5 then creates that
//      kernel's initramfs and step 7 makes it GRUB's default entry;
//   3. fstab, crypttab, /etc/default/grub: references by device name
//      (/dev/sda1, by-path, by-id) become UUID= (guest_config_edits.h);
//   4. network: configurations naming a source NIC (ifupdown, netplan,
//      NetworkManager, systemd-networkd, udev persistent-net rules) name the
//      target NIC instead;
//   5. initramfs: the plan's modules are added to the guest's initramfs
//      configuration (initramfs-tools' modules file, or a dracut drop-in),
//      and the initramfs of the plan's kernel is rebuilt by the guest's own
//      tool (update-initramfs -u -k KVER, or dracut -f --kver KVER): the
//      source kernel keeps booting, with the target's drivers;
//   6. BIOS -> UEFI (plan.esp_bytes): step 1 leaves room at the disk's end
//      for a new EFI System Partition (FAT), mounted at /boot/efi (fstab by
//      UUID); GRUB for x86_64-efi goes to the removable path with the
//      guest's grub-install (modules from the host only when its GRUB is
//      the image's exact version);
//   7. boot loader: its configuration is regenerated (update-grub, or
//      grub2-mkconfig) when the plan says so; with a template kernel, when
//      GRUB's first entry does not boot it, GRUB_DEFAULT in
//      /etc/default/grub is set to its menu entry id and the configuration
//      regenerated again, then checked;
//   8. units: guest tools the plan drops are disabled (systemctl disable);
//   9. unmounts, syncs and shuts the appliance down.
// Each step's result is in the CustomizationReport, with its time.
//
// Refused before anything is written (InvalidArgument unless noted): an
// unknown plan format version; a plan with blockers (FailedPrecondition,
// listing them); a module or unit name that is not one; a kernel version
// the guest does not have (FailedPrecondition); UEFI -> BIOS, or BIOS ->
// UEFI without an ESP size (Unimplemented); an ESP that does not fit in
// what the disk grows by (InvalidArgument); a template kernel without a
// template image, or one whose version is not the plan's kernel_version.
// During the build (a smaller target disk: see step 0):
// FailedPrecondition when the template image has no Linux root file system
// or lacks the kernel's image or module tree; FailedPrecondition when the
// guest has no operating system libguestfs recognises, or no initramfs
// tool Cairn knows (mkinitrd-only systems: Unimplemented); Internal with the
// guest tool's output when a command in the guest fails; Unavailable when
// the appliance dies or hangs (watchdog). On any error the overlay is
// deleted.
//
// Thread safety: no shared state; builds may run concurrently (each has its
// own appliance), but under TCG one at a time is the sensible limit.
#ifndef CAIRN_MEDIA_AGENT_IMAGE_CUSTOMIZER_H_
#define CAIRN_MEDIA_AGENT_IMAGE_CUSTOMIZER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "cairn/v1/restore_build.pb.h"
#include "common/status.h"

namespace cairn {

struct ImageCustomizerOptions {
  // The base image: exactly one of an NBD export's Unix socket (raw) and an
  // image file (`base_format`: "raw", "qcow2", ...).
  std::string base_nbd_socket;
  std::string base_path;
  std::string base_format = "raw";
  // Where the overlay is created (must exist). The overlay stays valid only
  // while the base does (it reads every unchanged block from it).
  std::string work_dir;
  v1::CustomizationPlan plan;
  // The boot template's image when plan.template_kernel is set: exactly one
  // of an NBD export's Unix socket (raw) and an image file. Attached
  // read-only (never written); ignored without a template kernel.
  std::string template_nbd_socket;
  std::string template_path;
  std::string template_format = "raw";
  std::chrono::seconds launch_timeout{600};
  // Limit of one appliance call; the initramfs rebuild and the boot loader
  // regeneration get `tool_timeout`.
  std::chrono::seconds call_timeout{300};
  std::chrono::seconds tool_timeout{1200};
  // Called as each step starts ("launching the appliance", "initramfs",
  // ...), from the calling thread.
  std::function<void(std::string_view step)> on_step;
  std::string qemu_img = "qemu-img";
};

struct CustomizedOverlay {
  std::string overlay_path;  // qcow2 in work_dir, backed by the base
  uint64_t virtual_size = 0;
  v1::CustomizationReport report;
};

// False when carrying out `plan` would change nothing (then CustomizeImage
// starts no appliance and the overlay stays empty).
bool PlanChangesAnything(const v1::CustomizationPlan& plan);

// Checks a plan without touching an image (the refusals listed above that
// need no guest). OK when a build may start.
Status ValidateCustomizationPlan(const v1::CustomizationPlan& plan);

StatusOr<CustomizedOverlay> CustomizeImage(
    const ImageCustomizerOptions& options);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_IMAGE_CUSTOMIZER_H_
