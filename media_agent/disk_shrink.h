// DiskShrink: the geometry and the checks of shrinking a disk image to a
// smaller target disk (docs/restore-build.md "shrink"), as pure functions so
// they are tested without an appliance. ImageCustomizer
// (media_agent/image_customizer.h) reads the partition table and the file
// system from the appliance, calls these, and carries out the result.
//
// A shrink keeps every partition where it is and ends the last partition
// (the one that ends last) earlier: at the target disk's end, less the
// 33 sectors of a GPT's backup header and entries, rounded down to 1 MiB.
// Its file system (ext2/3/4 only) shrinks first, and only when its minimum
// size (resize2fs -P, after e2fsck -f) plus a headroom of
// max(64 MiB, 5% of that minimum) fits the shrunk partition: the restored
// system must have room to run (and the build itself rebuilds an
// initramfs).
//
// Thread safety: pure functions.
#ifndef CAIRN_MEDIA_AGENT_DISK_SHRINK_H_
#define CAIRN_MEDIA_AGENT_DISK_SHRINK_H_

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace cairn {

// A GPT's backup header (1 sector) and its partition entries (32 sectors of
// 512 bytes) at the disk's end.
inline constexpr uint64_t kGptBackupSectors = 33;
// Partitions end on this boundary after a shrink.
inline constexpr uint64_t kShrinkAlignBytes = 1ull << 20;
// Headroom over a file system's minimum size: the larger of these.
inline constexpr uint64_t kShrinkHeadroomMinBytes = 64ull << 20;
inline constexpr uint64_t kShrinkHeadroomPercent = 5;

struct ShrinkRequest {
  uint64_t target_disk_bytes = 0;
  uint32_t sector_size = 512;  // logical
  bool gpt = false;
  // The last partition (the one that ends last): its number (for
  // messages), first byte and end (exclusive).
  int last_partition = 0;
  uint64_t last_start_bytes = 0;
  uint64_t last_end_bytes = 0;
  // The end (exclusive) of the other partition that ends last; 0 if none.
  uint64_t others_end_bytes = 0;
};

struct ShrinkGeometry {
  // False when the last partition already ends at or before new_end_bytes
  // (it and its file system stay as they are).
  bool shrink_partition = false;
  // The last partition's new end (exclusive) and last sector (inclusive:
  // what libguestfs part_resize takes), and its new size.
  uint64_t new_end_bytes = 0;
  int64_t new_end_sector = 0;
  uint64_t new_partition_bytes = 0;
};

// Where the last partition ends on the target disk. FailedPrecondition
// (naming the sizes) when another partition ends beyond that end, or the
// last partition would keep less than 1 MiB; InvalidArgument for a zero
// sector size or target size, or an inconsistent request.
StatusOr<ShrinkGeometry> PlanShrink(const ShrinkRequest& request);

// max(64 MiB, 5% of `minimum_bytes`).
uint64_t ShrinkHeadroomBytes(uint64_t minimum_bytes);

// The size the file system shrinks to: the partition's new size rounded down
// to whole blocks. FailedPrecondition, naming the partition, the sizes and
// the headroom, when the file system's minimum plus the headroom does not
// fit in that; InvalidArgument for a zero block size.
StatusOr<uint64_t> ShrunkFileSystemBytes(int partition,
                                         uint64_t partition_bytes,
                                         uint64_t minimum_bytes,
                                         uint64_t block_size,
                                         uint64_t target_disk_bytes);

// The minimum size in blocks from `resize2fs -P` output ("Estimated minimum
// size of the filesystem: 294536"). InvalidArgument when it has none.
StatusOr<uint64_t> ParseResize2fsMinimum(std::string_view output);

// OK for ext2/3/4; FailedPrecondition otherwise, saying why (xfs cannot
// shrink at all; others are not shrunk by this version).
Status CheckShrinkableFileSystem(int partition, std::string_view fs_type);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_DISK_SHRINK_H_
