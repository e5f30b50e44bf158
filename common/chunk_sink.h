// ChunkSink: where a backup pipeline sends what a media agent must store.
//
// The agent's pipeline talks only to this interface. The media agent's
// Repository implements it in-process (the embedded single-machine default);
// the network client implements it over gRPC. One sink serves one backup.
//
// Thread safety: implementations must allow concurrent HasChunks/PutChunk
// from several pipeline workers; Commit is called once, after every PutChunk
// has returned.
#ifndef CAIRN_COMMON_CHUNK_SINK_H_
#define CAIRN_COMMON_CHUNK_SINK_H_

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/chunk_id.h"
#include "common/status.h"

namespace cairn {

class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // For each id, whether the store already holds that chunk. A "true" also
  // pins the chunk against garbage collection until this backup ends.
  virtual StatusOr<std::vector<bool>> HasChunks(
      std::span<const ChunkId> ids) = 0;
  // Stores one chunk in stored form (docs/formats/chunk.md). Idempotent.
  virtual Status PutChunk(const ChunkId& id, std::string_view stored) = 0;
  // Makes every chunk durable, then commits the encoded manifest
  // (docs/formats/manifest.md) under `backup_id`. The backup exists only
  // after this returns OK.
  virtual Status Commit(const std::string& backup_id,
                        std::string_view encoded_manifest) = 0;
};

}  // namespace cairn

#endif  // CAIRN_COMMON_CHUNK_SINK_H_
