// zstd compression of chunk payloads.
//
// Thread safety: thread-safe; each thread keeps its own zstd contexts.
#ifndef CAIRN_COMMON_COMPRESSION_H_
#define CAIRN_COMMON_COMPRESSION_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn {

// Valid zstd levels are 1..19 (Cairn's default is 1, like Proxmox Backup).
inline constexpr int kDefaultZstdLevel = 1;
Status ValidateZstdLevel(int level);

// Compresses `input` at `level` and appends the frame to `*out`.
Status ZstdCompress(std::string_view input, int level, std::string* out);

// Decompresses one frame whose content size must be exactly `expected_size`
// (the stored chunk header records it). DataLoss on any mismatch or damage.
Status ZstdDecompress(std::string_view frame, size_t expected_size,
                      std::string* out);

}  // namespace cairn

#endif  // CAIRN_COMMON_COMPRESSION_H_
