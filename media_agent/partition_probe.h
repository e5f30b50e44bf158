// ProbePartitions: what a disk image holds - its partitions and the file
// system (or swap, LVM, ...) in each - as libblkid sees it. The media agent's
// pseudo-disk (media_agent/pseudo_disk.h) decides from this which partitions
// it can mount (DESIGN.md section 6).
//
// Only reads: the image is opened O_RDONLY and libblkid is given the
// descriptor and byte ranges, never the path (so no cache file is written and
// no device node is needed for a partition).
//
// Thread safety: ProbePartitions is thread-safe (each call has its own
// probes and descriptor).
#ifndef CAIRN_MEDIA_AGENT_PARTITION_PROBE_H_
#define CAIRN_MEDIA_AGENT_PARTITION_PROBE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace cairn {

struct PartitionInfo {
  // 1-based partition number from the partition table (logical MBR
  // partitions are 5 and up); 0 for a file system on the whole disk.
  uint32_t number = 0;
  uint64_t offset = 0;  // bytes from the start of the disk
  uint64_t size = 0;    // bytes (clamped to the end of the disk)
  // blkid's TYPE ("ext4", "xfs", "vfat", "btrfs", "swap", "LVM2_member",
  // "crypto_LUKS", ...); empty when nothing was recognised.
  std::string fs_type;
  std::string label;
  std::string uuid;
  // "0x83" style for an MBR partition, the type GUID for a GPT partition,
  // empty for the whole disk.
  std::string part_type;
  // Why probing this range failed (a read error, or two conflicting
  // signatures); empty when the probe ran. fs_type is empty when set.
  std::string probe_error;
};

// "partition 2 (xfs at offset 1048576)", "whole disk (ext4 at offset 0)",
// "partition 3 (unknown content at offset 68157440)": how every message
// about a partition names it.
std::string DescribePartition(const PartitionInfo& p);

// Lists the partitions of the disk image (regular file or block device) at
// `disk_path`, in table order, each with the file system libblkid finds in
// its range. Extended MBR containers are left out (their logical partitions
// are listed). A disk without a partition table yields one entry numbered 0
// if a file system covers the whole disk, else nothing.
// Errors: NotFound / PermissionDenied if the image cannot be opened;
// DataLoss if libblkid cannot read the partition table area (an I/O error)
// or finds more than one partition table signature. Problems inside one
// partition's range do not fail the call (see PartitionInfo::probe_error).
StatusOr<std::vector<PartitionInfo>> ProbePartitions(
    const std::string& disk_path);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_PARTITION_PROBE_H_
