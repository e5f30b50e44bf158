#include "media_agent/disk_shrink.h"

#include <charconv>
#include <string>

#include "common/strings.h"
#include "common/utf8.h"

namespace cairn {

StatusOr<ShrinkGeometry> PlanShrink(const ShrinkRequest& r) {
  if (r.sector_size == 0 || r.target_disk_bytes == 0) {
    return absl::InvalidArgumentError(
        "shrink: the sector size and the target disk size must not be zero");
  }
  if (r.last_end_bytes <= r.last_start_bytes ||
      r.others_end_bytes > r.last_end_bytes) {
    return absl::InvalidArgumentError(StrCat(
        "shrink: partition ", r.last_partition, " (bytes ", r.last_start_bytes,
        " to ", r.last_end_bytes, ") is not the disk's last partition"));
  }
  const uint64_t sectors = r.target_disk_bytes / r.sector_size;
  const uint64_t reserved = r.gpt ? kGptBackupSectors : 0;
  if (sectors <= reserved) {
    return absl::FailedPreconditionError(StrCat(
        "the target disk (", r.target_disk_bytes, " bytes) has no room"));
  }
  const uint64_t usable_end = (sectors - reserved) * r.sector_size;
  ShrinkGeometry g;
  g.new_end_bytes = usable_end / kShrinkAlignBytes * kShrinkAlignBytes;
  if (r.others_end_bytes > g.new_end_bytes) {
    return absl::FailedPreconditionError(StrCat(
        "the target disk (", r.target_disk_bytes,
        " bytes) is too small: a partition other than the last (", "partition ",
        r.last_partition, ") ends at byte ", r.others_end_bytes,
        ", beyond the ", g.new_end_bytes,
        " bytes the partitions may use; only the last partition shrinks"));
  }
  if (r.last_end_bytes <= g.new_end_bytes) {
    // Already fits: nothing moves.
    g.shrink_partition = false;
    g.new_end_bytes = r.last_end_bytes;
    g.new_end_sector =
        static_cast<int64_t>(r.last_end_bytes / r.sector_size) - 1;
    g.new_partition_bytes = r.last_end_bytes - r.last_start_bytes;
    return g;
  }
  if (g.new_end_bytes < r.last_start_bytes + kShrinkAlignBytes) {
    return absl::FailedPreconditionError(
        StrCat("the target disk (", r.target_disk_bytes,
               " bytes) is too small: the last partition (", r.last_partition,
               ") starts at byte ", r.last_start_bytes,
               " and would keep less than ", kShrinkAlignBytes, " bytes"));
  }
  g.shrink_partition = true;
  g.new_end_sector = static_cast<int64_t>(g.new_end_bytes / r.sector_size) - 1;
  g.new_partition_bytes = g.new_end_bytes - r.last_start_bytes;
  return g;
}

uint64_t ShrinkHeadroomBytes(uint64_t minimum_bytes) {
  const uint64_t percent = minimum_bytes / 100 * kShrinkHeadroomPercent;
  return percent > kShrinkHeadroomMinBytes ? percent : kShrinkHeadroomMinBytes;
}

StatusOr<uint64_t> ShrunkFileSystemBytes(int partition,
                                         uint64_t partition_bytes,
                                         uint64_t minimum_bytes,
                                         uint64_t block_size,
                                         uint64_t target_disk_bytes) {
  if (block_size == 0) {
    return absl::InvalidArgumentError("shrink: zero file system block size");
  }
  const uint64_t headroom = ShrinkHeadroomBytes(minimum_bytes);
  const uint64_t fs_bytes = partition_bytes / block_size * block_size;
  if (minimum_bytes + headroom > fs_bytes) {
    return absl::FailedPreconditionError(
        StrCat("the target disk (", target_disk_bytes,
               " bytes) is too small: the file system on partition ", partition,
               " needs at least ", minimum_bytes, " bytes (resize2fs -P) plus ",
               headroom, " bytes of headroom (", minimum_bytes + headroom,
               "), but the shrunk partition holds ", fs_bytes,
               " bytes; a target disk of about ",
               target_disk_bytes + (minimum_bytes + headroom - fs_bytes),
               " bytes or more would do"));
  }
  return fs_bytes;
}

StatusOr<uint64_t> ParseResize2fsMinimum(std::string_view output) {
  constexpr std::string_view kKey = "Estimated minimum size of the filesystem:";
  for (std::string_view line : SplitLines(output)) {
    size_t at = line.find(kKey);
    if (at == std::string_view::npos) continue;
    std::string_view n = TrimSpace(line.substr(at + kKey.size()));
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), v);
    if (ec == std::errc() && end == n.data() + n.size() && v > 0) return v;
  }
  return absl::InvalidArgumentError(
      StrCat("resize2fs -P printed no minimum size: ",
             PrintableUtf8(TrimSpace(output))));
}

Status CheckShrinkableFileSystem(int partition, std::string_view fs_type) {
  if (fs_type == "ext2" || fs_type == "ext3" || fs_type == "ext4") {
    return absl::OkStatus();
  }
  if (fs_type == "xfs") {
    return absl::FailedPreconditionError(StrCat(
        "partition ", partition,
        " holds an xfs file system, and xfs cannot shrink: the target disk "
        "must be at least as large as the partitions"));
  }
  return absl::FailedPreconditionError(StrCat(
      "partition ", partition, " holds ",
      fs_type.empty() ? std::string("no file system Cairn recognises")
                      : StrCat("a ", PrintableUtf8(fs_type), " file system"),
      "; only ext2/3/4 file systems are shrunk"));
}

}  // namespace cairn
