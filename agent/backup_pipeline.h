// BackupPipeline: reads a source (block device or image file), splits it
// into fixed-size chunks, and sends a ChunkSink only what it lacks.
//
// Per batch of chunks a worker: reads them, skips all-zero chunks, computes
// each id (SHA-256, or HMAC-SHA256 with the policy key), asks the sink which
// ids it holds (one batched call), then compresses (zstd) and encrypts
// (AES-256-GCM) only the missing chunks and puts them. Workers run in
// parallel on disjoint batches, so reading, hashing, compressing, encrypting
// and writing overlap on every core; memory is bounded by
// a fixed budget (BackupRequest::memory_budget, 160 MiB by default). The
// manifest is committed last, after every chunk is stored.
//
// Thread safety: RunBackup is reentrant; the sink must accept concurrent
// HasChunks/PutChunk calls.
#ifndef CAIRN_AGENT_BACKUP_PIPELINE_H_
#define CAIRN_AGENT_BACKUP_PIPELINE_H_

#include <cstdint>
#include <string>

#include "common/chunk_sink.h"
#include "common/data_key.h"
#include "common/manifest.h"
#include "common/progress.h"
#include "common/status.h"

namespace cairn {

struct BackupRequest {
  std::string source_path;  // block device or image file, opened read-only
  std::string source_name;  // client or source name recorded in the manifest
  std::string backup_id;    // empty: generated from source name and time
  // An incremental of this backup (not owned; null for a full). Its chunk
  // table is reused without reading the source when the source is an image
  // file whose state (device, inode, size, mtime, ctime) is unchanged since,
  // unless `force_read`.
  const Manifest* parent = nullptr;
  bool force_read = false;
  std::string profile_ref;  // optional hardware profile reference
  uint32_t chunk_size = kDefaultChunkSize;
  int zstd_level = 1;
  const DataKey* key = nullptr;      // null: not encrypted. Not owned.
  int threads = 0;                   // 0: one per core
  uint64_t batch_bytes = 32u << 20;  // per-worker read batch (at most)
  // Upper bound for the pipeline's buffers: threads and batch size shrink to
  // fit (peak RSS stays near this plus ~20 MiB whatever the core count).
  uint64_t memory_budget = 160u << 20;
  ProgressCounter* progress = nullptr;  // optional; counts source bytes
};

struct BackupStats {
  uint64_t image_size = 0;
  uint64_t chunks_total = 0;
  uint64_t chunks_zero = 0;
  uint64_t chunks_new = 0;      // sent to the sink
  uint64_t chunks_present = 0;  // deduplicated: the sink had them
  uint64_t bytes_read = 0;
  uint64_t new_plain_bytes = 0;
  uint64_t new_stored_bytes = 0;  // after compression and encryption
  bool source_unchanged = false;  // parent's chunk table reused, nothing read
  double seconds = 0;
};

struct BackupResult {
  Manifest manifest;
  BackupStats stats;
};

// Generates an id "<source>-<UTC yyyymmddThhmmssZ>-<4 random hex>", with the
// source name reduced to the characters a backup id allows.
std::string NewBackupId(const std::string& source_name, int64_t unix_us);

// The state string recorded in Manifest::source_state for `path`: empty for
// anything but a regular file.
StatusOr<std::string> SourceState(const std::string& path);

StatusOr<BackupResult> RunBackup(const BackupRequest& request, ChunkSink* sink);

}  // namespace cairn

#endif  // CAIRN_AGENT_BACKUP_PIPELINE_H_
