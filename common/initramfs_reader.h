// Lists the members of a Linux initramfs image, and the kernel modules among
// them.
//
// A Debian initramfs (initramfs-tools, dracut alike) is a concatenation of
// cpio "newc" archives: optional uncompressed early archives (CPU
// microcode), then the main archive compressed with zstd, gzip, xz, lz4,
// bzip2 or lzma; zero padding may separate them. The kernel unpacks them in
// order.
//
// Compressed archives are read with libarchive. Uncompressed newc archives
// are walked by a small header parser in this file, because the next
// archive starts right after the uncompressed one's "TRAILER!!!" record and
// libarchive neither reads past that record nor reports exactly where it
// ended (it reads ahead in blocks); the newc header is 110 ASCII-hex bytes,
// so the walk is short and fully bounds-checked. After a compressed archive
// the reader stops, as initramfs-tools never appends anything after it.
//
// Hostile input: every size field is checked against the file, member and
// segment counts are bounded, and truncated or garbage data is a DataLoss
// error naming the file, the segment and the offset.
//
// Thread safety: a free function with no shared state.
#ifndef CAIRN_COMMON_INITRAMFS_READER_H_
#define CAIRN_COMMON_INITRAMFS_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace cairn {

struct InitramfsListing {
  uint64_t size_bytes = 0;
  // "cpio", "cpio+zstd", "cpio+gzip", ... in file order.
  std::vector<std::string> segments;
  std::vector<std::string> members;  // every member path, "./" stripped
  // Members that are kernel modules (*.ko, *.ko.xz, *.ko.zst, *.ko.gz), and
  // their normalised names (sorted, unique).
  std::vector<std::string> module_paths;
  std::vector<std::string> modules;
};

struct InitramfsLimits {
  uint64_t max_members = 200000;
  uint64_t max_segments = 32;
  uint64_t max_path_bytes = 4096;
};

// Reads the initramfs at host path `path`. `display_path` names it in
// errors (the machine path, e.g. /boot/initrd.img-6.1.0-30-amd64).
// NotFound when absent; DataLoss for truncated or malformed data;
// ResourceExhausted past `limits`.
StatusOr<InitramfsListing> ReadInitramfs(const std::string& path,
                                         const std::string& display_path,
                                         const InitramfsLimits& limits = {});

}  // namespace cairn

#endif  // CAIRN_COMMON_INITRAMFS_READER_H_
