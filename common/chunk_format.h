// The stored chunk: how a chunk's bytes sit in a chunk store and travel to
// it. Format specification: docs/formats/chunk.md (keep the two in step).
//
//   header (52 bytes, little-endian) | payload
//   payload = zstd(plaintext) or plaintext, then AES-256-GCM when encrypted
//
// Anyone can check a stored chunk's integrity (header CRC and payload CRC)
// without the key; whoever holds the key also checks the GCM tag and that
// the plaintext hashes to the chunk's id.
//
// Thread safety: all functions are thread-safe.
#ifndef CAIRN_COMMON_CHUNK_FORMAT_H_
#define CAIRN_COMMON_CHUNK_FORMAT_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/chunk_id.h"
#include "common/data_key.h"
#include "common/status.h"

namespace cairn {

inline constexpr char kChunkMagic[4] = {'C', 'R', 'N', 'C'};
inline constexpr uint8_t kChunkFormatVersion = 1;
inline constexpr size_t kChunkHeaderSize = 52;
inline constexpr uint32_t kMaxChunkPlainSize = 16u << 20;  // 16 MiB

enum ChunkFlags : uint8_t {
  kChunkCompressed = 1 << 0,  // payload is a zstd frame (before encryption)
  kChunkEncrypted = 1 << 1,   // payload is AES-256-GCM ciphertext
};

struct ChunkHeader {
  uint8_t version = kChunkFormatVersion;
  uint8_t flags = 0;
  uint32_t plain_size = 0;
  uint32_t payload_size = 0;
  uint32_t payload_crc = 0;
  std::array<uint8_t, 12> nonce{};
  std::array<uint8_t, 16> tag{};
};

// The id of a chunk with this plaintext: SHA-256, or HMAC-SHA256 under the
// key's id key when `key` is non-null.
ChunkId ComputeChunkId(std::string_view plaintext, const DataKey* key);

struct ChunkEncodeOptions {
  int zstd_level = 1;            // 1..19
  const DataKey* key = nullptr;  // null: not encrypted. Not owned.
};

// Encodes `plaintext` (whose id is `id`) into stored form, replacing
// `*stored`. Compression is kept only if it shrinks the chunk.
// REQUIRES: plaintext.size() <= kMaxChunkPlainSize.
Status EncodeChunk(const ChunkId& id, std::string_view plaintext,
                   const ChunkEncodeOptions& options, std::string* stored);

// Parses the header and checks both CRCs; needs no key. DataLoss describes
// what is wrong (truncated, bad magic, unknown version, CRC mismatch).
StatusOr<ChunkHeader> CheckStoredChunk(std::string_view stored);

// Checks, decrypts, decompresses and verifies that the plaintext hashes to
// `id`. An encrypted chunk needs `key` (FailedPrecondition without it).
// DataLoss on any damage; `*plaintext` is replaced.
Status DecodeChunk(const ChunkId& id, std::string_view stored,
                   const DataKey* key, std::string* plaintext);

}  // namespace cairn

#endif  // CAIRN_COMMON_CHUNK_FORMAT_H_
