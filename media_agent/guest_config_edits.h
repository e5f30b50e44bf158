// GuestConfigEdits: the text edits a restore build makes to a guest's
// configuration files (docs/restore-build.md "What a build changes"), as
// pure functions over file contents so they are tested without an
// appliance. ImageCustomizer (media_agent/image_customizer.h) reads each
// file from the guest, calls these, and writes the result back only when
// something changed.
//
// Every function returns the new text and one readable line per change
// ("line 3: /dev/sda1 -> UUID=..."). Lines are kept byte-for-byte except
// for the tokens that change; comments (lines whose first non-blank
// character is '#', or ';' in ini-style files) are never edited, so an
// admin's notes survive.
//
// Thread safety: pure functions.
#ifndef CAIRN_MEDIA_AGENT_GUEST_CONFIG_EDITS_H_
#define CAIRN_MEDIA_AGENT_GUEST_CONFIG_EDITS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/v1/restore_build.pb.h"

namespace cairn {

struct ConfigEdit {
  std::string text;
  std::vector<std::string> changes;  // empty: text is unchanged
  bool changed() const { return !changes.empty(); }
};

// The partition number a kernel device name refers to: "/dev/sda1" -> 1,
// "/dev/vdb" -> 0 (the whole disk), "/dev/nvme0n1p3" -> 3,
// "/dev/mmcblk0p2" -> 2, "/dev/xvda2" -> 2. nullopt for anything that is not
// such a name (/dev/mapper/..., /dev/md0, UUID=..., /dev/disk/by-uuid/...).
std::optional<uint32_t> PartitionOfDeviceName(std::string_view device);

// True for references that change when the disk controller changes: kernel
// names (/dev/sda1, /dev/vda1, /dev/nvme0n1p1, ...), /dev/disk/by-path/ and
// /dev/disk/by-id/ links.
bool IsUnstableDeviceReference(std::string_view spec);

// Maps an unstable reference to its stable form ("UUID=...", or nullopt
// when it cannot: the edit then leaves it and says so).
using StableReferenceFn =
    std::function<std::optional<std::string>(std::string_view spec)>;

// fstab: the first field of every entry. crypttab: the second.
ConfigEdit RewriteFstab(std::string_view text, const StableReferenceFn& stable);
ConfigEdit RewriteCrypttab(std::string_view text,
                           const StableReferenceFn& stable);
// Kernel command lines in /etc/default/grub (GRUB_CMDLINE_LINUX and
// GRUB_CMDLINE_LINUX_DEFAULT): root=, resume= with an unstable reference.
ConfigEdit RewriteGrubDefaults(std::string_view text,
                               const StableReferenceFn& stable);

// Network configuration: every whole-word occurrence of a source NIC name
// becomes the target name (also as the stem of "enp0s2.10" or "enp0s2:1"),
// and every source MAC (any case) the target MAC (in the case the file
// used). One pass per line, so swapped names (a->b, b->a) come out right.
// The same function serves ifupdown's interfaces files, netplan YAML,
// NetworkManager keyfiles, systemd-networkd .network/.link files and udev
// persistent-net rules: all name NICs by name or MAC in plain tokens.
ConfigEdit RenameNics(std::string_view text,
                      const std::vector<v1::NicRename>& renames);

// /etc/initramfs-tools/modules: appends the modules not already listed
// (one per line, after a comment naming `why`). Lines already there are
// kept, so an edit made twice changes nothing the second time.
ConfigEdit AddInitramfsToolsModules(std::string_view text,
                                    const std::vector<std::string>& modules,
                                    std::string_view why);

// A dracut drop-in (/etc/dracut.conf.d/90-cairn-restore.conf) that adds
// `modules` to every initramfs dracut builds.
std::string DracutDropIn(const std::vector<std::string>& modules,
                         std::string_view why);

// fstab: appends `entry` (a complete line) under a comment naming `why`,
// unless a non-comment line already mounts something at `mount_point`.
ConfigEdit AddFstabEntry(std::string_view text, std::string_view entry,
                         std::string_view mount_point, std::string_view why);

// initramfs-tools's MODULES= setting in initramfs.conf text ("most", "dep",
// "list", "netboot"); "most" (the default) when unset.
std::string InitramfsToolsModulesPolicy(std::string_view initramfs_conf);

// True for a kernel module name as modprobe spells it ([A-Za-z0-9_-]+,
// at most 64 bytes): what may go into a modules file.
bool IsValidModuleName(std::string_view name);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_GUEST_CONFIG_EDITS_H_
