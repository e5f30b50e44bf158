// Manifest: the complete description of one image backup. Format
// specification: docs/formats/manifest.md (keep the two in step).
//
// A manifest lists every chunk of the image in order (zero chunks as the
// reserved all-zero id), so every backup - full, incremental or synthetic -
// restores on its own. It is committed last, after every chunk it names is
// durable; a backup exists only once its manifest does.
//
// Thread safety: plain value type.
#ifndef CAIRN_COMMON_MANIFEST_H_
#define CAIRN_COMMON_MANIFEST_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/chunk_id.h"
#include "common/data_key.h"
#include "common/status.h"

namespace cairn {

inline constexpr uint32_t kMinChunkSize = 64u << 10;     // 64 KiB
inline constexpr uint32_t kMaxChunkSize = 16u << 20;     // 16 MiB
inline constexpr uint32_t kDefaultChunkSize = 4u << 20;  // 4 MiB

// InvalidArgument unless `chunk_size` is a power of two in [64 KiB, 16 MiB].
Status ValidateChunkSize(uint64_t chunk_size);

// Backup ids name files and catalog keys: 1-128 characters from
// [A-Za-z0-9._-], not starting with '.' (no path traversal, no hidden files).
Status ValidateBackupId(std::string_view id);

enum class BackupKind : uint8_t {
  kFull = 0,
  kIncremental = 1,    // has a parent; only changed chunks were sent
  kSyntheticFull = 2,  // made by consolidating a chain; no chunk was read
  // Made by a restore build from the backup `parent_id` for one target
  // (media_agent/derived_image.h): shares every unchanged chunk with it.
  kCustomized = 3,
};
std::string_view BackupKindName(BackupKind kind);

struct Manifest {
  std::string backup_id;
  std::string source;  // client or source name; retention groups by it
  BackupKind kind = BackupKind::kFull;
  // The parent backup (kIncremental), or the backup a kCustomized image was
  // made from; empty otherwise.
  std::string parent_id;
  int64_t created_unix_us = 0;
  uint64_t image_size = 0;
  uint32_t chunk_size = kDefaultChunkSize;
  std::string key_fingerprint;  // 16 raw bytes, empty if not encrypted
  std::string profile_ref;      // hardware profile reference, may be empty
  // What the agent saw of its source (docs/formats/manifest.md): for an image
  // file its device, inode, size, mtime and ctime; empty for block devices.
  // An incremental whose source state is unchanged reuses the parent's chunk
  // table without reading the source (like restic's and borg's file cache).
  std::string source_state;
  std::vector<std::string> consolidated_from;  // synthetic fulls only
  // ceil(image_size / chunk_size) entries; ChunkId::Zero() for zero chunks.
  std::vector<ChunkId> chunks;

  uint64_t ChunkCount() const;  // derived from image_size and chunk_size
  bool encrypted() const { return !key_fingerprint.empty(); }
  // Length of chunk `index` (the last one may be short).
  uint32_t ChunkLength(uint64_t index) const;
};

// Encodes `m`; when `key` is non-null appends an HMAC-SHA256 signature under
// the key's manifest key. Always appends a SHA-256 checksum.
// REQUIRES: m.chunks.size() == m.ChunkCount(); key fingerprint matches `key`.
StatusOr<std::string> EncodeManifest(const Manifest& m, const DataKey* key);

// Decodes and checks a manifest. `name` (usually the file path) is put in
// every error. DataLoss if truncated, damaged or inconsistent. When `key` is
// given the signature is verified (DataLoss if it does not match, or if the
// manifest is unsigned but encrypted, FailedPrecondition on a fingerprint
// mismatch). Without a key the signature is skipped; the checksum is not.
StatusOr<Manifest> DecodeManifest(std::string_view data, std::string_view name,
                                  const DataKey* key);

}  // namespace cairn

#endif  // CAIRN_COMMON_MANIFEST_H_
