// SandboxDisk: the sandboxed browse path (DESIGN.md section 6; issue 7;
// docs/browse.md "The sandboxed path"). One backup, exported read-only by
// nbdkit (media_agent/nbd_export.h), attached read-only to a libguestfs
// appliance - a small VM with its own kernel - which finds, mounts and reads
// the image's file systems. The host kernel never parses the image: not its
// partition table, not its file systems. It records the same
// v1::FileCatalogue as the host path (CatalogueFileSystem over the
// pseudo-disk's mounts, media_agent/file_catalogue.h) and reads files, for
// the Browser to use instead of the pseudo-disk for backups whose storage
// policy asks for the sandbox.
//
// What it costs: a launch takes 20-25 s without KVM (a few seconds with it),
// every appliance call is a round trip to the VM, and no extents are known
// (a sandboxed catalogue has extents_complete=false everywhere, so every
// read goes through the appliance).
//
// The appliance:
//  - backend: LIBGUESTFS_BACKEND / LIBGUESTFS_BACKEND_SETTINGS from the
//    environment when set; otherwise the "direct" backend (qemu run by this
//    process, which can reach the export's private socket), plus
//    "force_tcg" when /dev/kvm cannot be opened. The process environment is
//    never modified.
//  - the drive: protocol nbd, server unix:<nbd_socket>, format raw,
//    readonly. libguestfs puts a throw-away qcow2 overlay (in a private
//    temporary directory of this SandboxDisk, mode 0700) in front of it;
//    nothing is ever written to the export, which nbdkit serves read-only
//    anyway.
//  - file systems are mounted read-only and without journal replay (ext3/4
//    noload, xfs norecovery, btrfs nologreplay; plain read-only otherwise),
//    as the host path mounts them, so both paths see the same state of an
//    image that was backed up live.
//
// Hangs: every appliance call runs under a watchdog. A call that takes
// longer than `call_timeout` (a damaged file system that makes the
// appliance's kernel spin), or a launch longer than `launch_timeout`, gets
// the appliance killed (SIGKILL to its qemu process); the call fails naming
// what it was doing and the partition, and every later call of this
// SandboxDisk returns Unavailable. The caller then destroys it and may open
// a new one.
//
// Thread safety: a libguestfs handle is single-threaded; a mutex serializes
// every use of it. Catalogue() holds it for its whole walk; Read() holds it
// per appliance call (at most 1 MiB of data), never while `sink` runs, so
// reads of one SandboxDisk interleave. One mounted file system is cached: the
// appliance remounts only when a call needs another partition.
#ifndef CAIRN_MEDIA_AGENT_SANDBOX_DISK_H_
#define CAIRN_MEDIA_AGENT_SANDBOX_DISK_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/v1/browse.pb.h"
#include "common/status.h"
#include "media_agent/file_catalogue.h"

namespace cairn {

class GuestfsAppliance;  // media_agent/guestfs_appliance.h

struct SandboxDiskOptions {
  std::string nbd_socket;  // the NbdExport's Unix socket (required)
  // How long guestfs_launch may take before the appliance is killed.
  std::chrono::seconds launch_timeout{300};
  // Bounds of each file system's walk, as for CatalogueFileSystem (the
  // deadline is per file system).
  CatalogueLimits limits;
  // How long one appliance call (a mount, one directory's listing or
  // stats, a 1 MiB read) may take before the appliance is killed.
  std::chrono::seconds call_timeout{120};
};

class SandboxDisk {  // one libguestfs appliance attached read-only to a backup
 public:
  // Starts the appliance with the export as its only disk and waits until it
  // is ready (20-25 s under TCG). InvalidArgument for a missing or non-socket
  // `nbd_socket`, a non-positive timeout or invalid limits; Unavailable with
  // libguestfs's message if the appliance cannot be created or launched (no
  // qemu, no appliance, the export refuses the connection) or does not start
  // within `launch_timeout`.
  static StatusOr<std::unique_ptr<SandboxDisk>> Open(
      const SandboxDiskOptions& options);

  // Shuts the appliance down (guestfs_shutdown, then guestfs_close; the
  // watchdog kills qemu if that takes more than 30 s) and removes the
  // private temporary directory.
  ~SandboxDisk();
  SandboxDisk(const SandboxDisk&) = delete;
  SandboxDisk& operator=(const SandboxDisk&) = delete;

  // The catalogue of every file system the appliance finds in the image.
  //
  // File systems: guestfs_list_filesystems, numbered by partition (/dev/sdaN
  // is partition N; a file system on the whole disk, /dev/sda, is 0), with
  // the partition's offset and size from the partition table (the whole
  // disk's size for partition 0), fs_type as blkid names it (vfs_type),
  // label and uuid. Each is mounted read-only at the appliance's "/" in turn
  // and walked. Not catalogued, and listed in `skipped` with a reason in
  // `error` ("partition 2 (swap at offset 34603008): skipped: swap space
  // holds no files"): swap, LVM physical volumes (logical volumes have no
  // partition number to be addressed by; the reason names those found),
  // other *_member and LUKS containers, partitions without a recognised file
  // system, and file systems the appliance cannot mount (damaged ones: the
  // mount's error). MBR extended containers are left out. btrfs subvolumes
  // are catalogued where the default subvolume reaches them, not separately.
  //
  // The walk produces what CatalogueFileSystem produces for the same file
  // system mounted on the host - same paths ("/", "/etc/hostname"; names are
  // bytes, not necessarily UTF-8), depth-first pre-order with children
  // sorted by name bytes, same fields from lstat (type, size, mode & 07777,
  // uid, gid, nanosecond times, inode, link count, rdev of device nodes,
  // symlink target as stored), same limits (max_entries, max_depth, the
  // per-file-system deadline: truncated=true and an `error` naming the
  // partition and the limit) - except that no extents are recorded
  // (extents_complete=false). One round trip lists a directory (guestfs_ls),
  // one stats all its entries (lstatnslist), one more reads its symlinks
  // (readlinklist), never one per file. Per-entry errors (a damaged
  // directory, an entry that cannot be stat'ed) go into `error`, prefixed
  // "partition N: ", with names made printable (string fields must be
  // UTF-8), and the walk goes on.
  //
  // If the appliance dies during the walk (the watchdog killed it), the
  // catalogue is still returned: the file system being walked keeps what was
  // read, with an `error` saying why the walk stopped, and the file systems
  // after it are in `skipped` ("not catalogued: the appliance stopped ...").
  //
  // created_unix_us is the system clock's now. Errors: Unavailable if the
  // appliance is already gone (killed by the watchdog, crashed); Internal if
  // libguestfs cannot list the disk's devices, partitions or file systems.
  StatusOr<v1::FileCatalogue> Catalogue(const std::string& backup_id);

  // Streams [offset, offset + length) (length 0: to the end; the range is
  // clipped to the file's size) of the regular file at `path` (normalized
  // with NormalizeBrowsePath: InvalidArgument for ".." or a NUL byte) in file
  // system `partition` to `sink`, in order, in pieces of at most 1 MiB (one
  // guestfs_pread each). Before reading, every prefix of the path is
  // lstat'ed in the appliance: a symlink anywhere on the way, or as the file
  // itself, is refused (FailedPrecondition naming it and its target: the
  // appliance would follow it), as is a directory or any other non-regular
  // file (FailedPrecondition). NotFound if `partition` holds no mountable
  // file system or the path does not exist; OutOfRange if `offset` is past
  // the end of the file; FailedPrecondition if the file system cannot be
  // mounted; DataLoss if the appliance reports an I/O error or the file ends
  // before its size; Unavailable if the appliance is gone. The first error of
  // `sink` stops the read and is returned.
  Status Read(uint32_t partition, const std::string& path, uint64_t offset,
              uint64_t length,
              const std::function<Status(std::string_view)>& sink);

  // qemu's process id (for tests and diagnostics); -1 once it is gone.
  pid_t appliance_pid() const;

 private:
  // One partition (or the whole disk) as the appliance sees it.
  struct Volume {
    uint32_t partition = 0;
    uint64_t offset = 0;
    uint64_t size = 0;
    std::string device;   // "/dev/sda1"
    std::string fs_type;  // vfs_type; "" when nothing was recognised
    std::string label, uuid;
    std::string skip_reason;  // non-empty: not mounted, and why
  };

  SandboxDisk(const SandboxDiskOptions& options,
              std::unique_ptr<GuestfsAppliance> appliance);

  // Finds the appliance's volumes once (volumes_). REQUIRES: mu_.
  Status ProbeVolumes();
  // The volume numbered `partition`, if it can be mounted. REQUIRES: mu_.
  StatusOr<const Volume*> MountableVolume(uint32_t partition);
  // Mounts `v` at the appliance's "/" unless it is mounted already.
  // REQUIRES: mu_.
  Status EnsureMounted(const Volume& v);
  // Walks the mounted `v` into `out` (entries, truncated, error). An error
  // only if its root cannot be stat'ed. REQUIRES: mu_.
  Status Walk(const Volume& v, v1::FileSystemCatalogue* out);
  // Checks every prefix of the normalized `path` on the mounted `v` and
  // returns the size of the regular file it names. REQUIRES: mu_.
  StatusOr<uint64_t> CheckRegularFile(const Volume& v, const std::string& path);

  const SandboxDiskOptions options_;
  mutable std::mutex mu_;
  std::unique_ptr<GuestfsAppliance> appliance_;  // guarded by mu_
  bool probed_ = false;                          // guarded by mu_
  std::vector<Volume> volumes_;         // by partition number; guarded by mu_
  std::optional<std::string> mounted_;  // device at "/"; guarded by mu_
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_SANDBOX_DISK_H_
