// PseudoDisk: a backup presented to the media agent's own host as a disk, so
// the host's own file-system code reads it - no hypervisor, no VM (DESIGN.md
// section 6; issue 7).
//
// The chain, all read-only:
//   NBD export (NbdExport: nbdkit + Cairn's plugin on a private Unix socket,
//   or any NBD URI)
//   -> nbdfuse --readonly: a FUSE file system at DIR/fuse holding one file,
//      DIR/fuse/disk, whose bytes are the export's
//   -> ProbePartitions (libblkid) on that file
//   -> one loop device per partition (LO_FLAGS_READ_ONLY | AUTOCLEAR, offset
//      and size limit of the partition - `losetup -P` partition nodes are not
//      relied on, containers do not get them)
//   -> mount(2) at DIR/p<N> with MS_RDONLY | MS_NOSUID | MS_NODEV |
//      MS_NOEXEC | MS_NOATIME and options that forbid every write to the
//      image, journal replay included: ext4/ext3 "noload", xfs
//      "norecovery", btrfs "rescue=nologreplay" (or "nologreplay" on older
//      kernels), ext2 and vfat none.
//
// What is not mounted is reported per partition (MountedFileSystem::status),
// never as a failure of the whole disk:
//   skipped, FailedPrecondition: swap space, no recognised content, an LVM
//     physical volume when device-mapper is not available
//     (/dev/mapper/control missing);
//   skipped, Unimplemented: LVM with device-mapper, LUKS and other types the
//     pseudo-disk does not mount;
//   failed: the mount's own error - FailedPrecondition when the host kernel
//     lacks the file system (ENODEV), DataLoss for a damaged file system,
//     DeadlineExceeded when mount(2) did not return within timeout_ms.
// Every message names the partition: "partition 2 (xfs at offset 1048576):
// ...".
//
// A hostile or damaged file system must not hang the caller: each mount(2)
// runs in a forked child (which makes only that system call and _exit) and
// is waited for with the timeout. A child that does not return is left
// behind (it may be in uninterruptible sleep) and remembered, so Detach()
// lazily unmounts whatever it may still mount and reaps it.
//
// Needs root (CAP_SYS_ADMIN), /dev/fuse, /dev/loop-control, nbdfuse and
// fusermount3 (Debian: libnbd-bin, fuse3).
//
// Child processes: nbdfuse is started with fork/exec (argv only, no shell,
// every other descriptor closed, PR_SET_PDEATHSIG SIGTERM: it ends when the
// thread that called Attach() exits, so call Attach() from a long-lived
// thread) and is stopped with `fusermount3 -u`, never by a signal unless it
// will not exit after its mount is gone. CleanStalePseudoDisks() removes
// what a crashed process left behind.
//
// Thread safety: Attach()/Detach()/the destructor are called by one owner.
// The const accessors may be called from any thread, also while Detach()
// runs: filesystems() is fixed once Attach() returns (after Detach() the
// mount paths in it no longer hold mounts; attached() tells).
#ifndef CAIRN_MEDIA_AGENT_PSEUDO_DISK_H_
#define CAIRN_MEDIA_AGENT_PSEUDO_DISK_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "media_agent/partition_probe.h"

namespace cairn {

struct PseudoDiskOptions {
  // The NBD export, e.g. NbdExport::uri() ("nbd+unix:///?socket=...").
  std::string nbd_uri;
  // Private directory for this disk. Created with mode 0700; if it exists it
  // must be an empty directory (not a symbolic link) owned by this user.
  // Detach() removes it. A Unix path: keep it short.
  std::string dir;
  // false: attach (nbdfuse) and probe only - no loop devices, no mounts; the
  // partitions are read through disk_path() at their offsets.
  bool mount = true;
  std::string nbdfuse_path;  // empty: "nbdfuse" on $PATH
  int timeout_ms = 30000;    // for nbdfuse readiness and each mount(2)
};

struct MountedFileSystem {
  PartitionInfo partition;
  std::string mount_path;   // DIR/p<N>; empty when not mounted
  std::string loop_device;  // /dev/loopN; empty when not attached
  Status status;  // OK when mounted; otherwise why not (skipped or failed)
};

class PseudoDisk {
 public:
  // Starts nbdfuse on `options.nbd_uri`, probes the disk and (with
  // options.mount) mounts every partition it can. Errors of the whole disk:
  // InvalidArgument for bad options; NotFound if nbdfuse or fusermount3 is
  // missing (naming the package); FailedPrecondition if the directory is not
  // empty or not ours; Unavailable if nbdfuse exits before serving (with its
  // log); DeadlineExceeded if it is not ready within timeout_ms; the probe's
  // errors (ProbePartitions). Everything started is undone on error.
  // Per-partition problems are in filesystems(), not here.
  static StatusOr<std::unique_ptr<PseudoDisk>> Attach(
      const PseudoDiskOptions& options);

  // Detach(), ignoring its status.
  ~PseudoDisk();
  PseudoDisk(const PseudoDisk&) = delete;
  PseudoDisk& operator=(const PseudoDisk&) = delete;

  // Unmounts every file system (lazily if busy), releases the loop devices
  // (AUTOCLEAR: they go with their last user), unmounts the FUSE file system
  // with `fusermount3 -u` (lazily, then SIGTERM to nbdfuse, as fallbacks when
  // a hung mount keeps it busy), reaps nbdfuse and removes the directory.
  // Idempotent; always does all of it. Returns the first problem met (the
  // fallbacks above count as problems: Unavailable naming what was forced).
  Status Detach();

  const std::string& dir() const { return dir_; }
  // DIR/fuse/disk: the whole disk as a read-only file while attached.
  const std::string& disk_path() const { return disk_path_; }
  uint64_t size() const { return size_; }
  // One entry per partition ProbePartitions found, in its order.
  const std::vector<MountedFileSystem>& filesystems() const {
    return filesystems_;
  }
  // True from Attach() until Detach() starts.
  bool attached() const { return attached_.load(); }

 private:
  struct PendingMount {  // a mount(2) child that did not return in time
    pid_t pid;
    std::string path;
  };

  PseudoDisk() = default;
  Status StartNbdfuse(const PseudoDiskOptions& options,
                      const std::string& nbdfuse);
  MountedFileSystem MountPartition(const PartitionInfo& partition,
                                   int backing_fd);
  Status StopNbdfuse();
  void ReapPendingMounts(int wait_ms);

  std::string dir_;
  std::string fuse_dir_;
  std::string disk_path_;
  std::string nbdfuse_pid_file_;
  std::string nbdfuse_log_;
  std::string fusermount_;
  int timeout_ms_ = 30000;
  pid_t nbdfuse_pid_ = -1;
  uint64_t size_ = 0;
  std::vector<MountedFileSystem> filesystems_;
  std::vector<PendingMount> pending_mounts_;
  std::vector<std::string> mount_dirs_;  // DIR/p<N> created, to remove
  std::atomic<bool> attached_{false};
  bool detached_ = false;
};

// Removes what a crashed process left under `runtime_dir` (the parent of
// PseudoDisk directories and NbdExport private directories, possibly nested
// one level in session directories): every mount below it, deepest first
// (umount2 MNT_DETACH - file systems and nbdfuse's FUSE mounts alike), loop
// devices still backed by a file below it, nbdfuse and nbdkit processes whose
// pid files (nbdfuse.pid, nbdkit.pid) are there - only if /proc/PID/cmdline
// is that program with that pid file - and then the directories. Files
// directly in `runtime_dir` (a lock file) are kept. Returns how many
// sessions - subdirectories of `runtime_dir` - were removed. A missing
// `runtime_dir` is 0. FailedPrecondition, touching nothing, if `runtime_dir`
// is not private (not ours, or writable by group or others - /tmp itself);
// FailedPrecondition naming it if something could not be removed (the rest
// is still cleaned). REQUIRES: nothing live uses `runtime_dir` (the caller
// owns it, e.g. under a lock).
StatusOr<int> CleanStalePseudoDisks(const std::string& runtime_dir);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_PSEUDO_DISK_H_
