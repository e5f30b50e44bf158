// ChunkSource: where readers of a backup get its manifest and chunks.
//
// The media agent's Repository implements it on local disk; the agent's
// network client implements it over gRPC (a restore session). ImageReader
// (restore, NBD export, browse) reads through this interface only.
//
// Thread safety: implementations must allow concurrent calls.
#ifndef CAIRN_COMMON_CHUNK_SOURCE_H_
#define CAIRN_COMMON_CHUNK_SOURCE_H_

#include <string>

#include "common/chunk_id.h"
#include "common/data_key.h"
#include "common/manifest.h"
#include "common/status.h"

namespace cairn {

class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  // Decodes a committed manifest; with `key` its signature is checked too.
  // NotFound for an unknown id; DataLoss naming where it is if damaged.
  virtual StatusOr<Manifest> LoadManifest(const std::string& backup_id,
                                          const DataKey* key) const = 0;
  // A chunk's stored form (docs/formats/chunk.md), header and CRC checked.
  // NotFound if absent; DataLoss naming where it is if damaged.
  virtual StatusOr<std::string> GetChunk(const ChunkId& id) const = 0;
  // Where a chunk lives (a file path, a media agent), for error messages.
  virtual std::string DescribeChunk(const ChunkId& id) const = 0;
};

}  // namespace cairn

#endif  // CAIRN_COMMON_CHUNK_SOURCE_H_
