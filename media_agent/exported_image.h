// ExportedImage: one backup as a block device server sees it - the image's
// bytes at any offset, and which ranges are zero - for the nbdkit plugin
// (media_agent/nbd_plugin.cc) and anything else that serves block reads.
//
// Reads decode chunks through ImageReader::ReadChunk into a cache of decoded
// chunks bounded in bytes. Concurrent reads of the same chunk decode it once
// (the others wait for the first), which matters for NBD clients that keep
// many requests in flight over several connections (nbdcopy, qemu-img).
// Zero chunks (the manifest's all-zero id) read as zeros without I/O and are
// reported as zero extents.
//
// Thread safety: thread-safe; Read and Extents may run concurrently.
#ifndef CAIRN_MEDIA_AGENT_EXPORTED_IMAGE_H_
#define CAIRN_MEDIA_AGENT_EXPORTED_IMAGE_H_

#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/chunk_source.h"
#include "common/data_key.h"
#include "common/image_reader.h"
#include "common/manifest.h"
#include "common/status.h"

namespace cairn {

// Default bound of the decoded-chunk cache: 64 chunks of the default 4 MiB.
inline constexpr uint64_t kDefaultExportCacheBytes = 256ull << 20;

class ExportedImage {
 public:
  // A run of the image that is either all data or all zero chunks.
  struct Extent {
    uint64_t offset = 0;
    uint64_t length = 0;
    bool zero = false;
    bool operator==(const Extent&) const = default;
  };

  // Opens `backup_id` from `source`, taking ownership of both `source` and
  // `key` (null for an unencrypted backup). NotFound for an unknown backup;
  // FailedPrecondition for an encrypted backup without a key or with another
  // key; DataLoss if the manifest is damaged or its signature does not match.
  // `cache_bytes` bounds the decoded-chunk cache (at least one chunk is kept).
  static StatusOr<std::unique_ptr<ExportedImage>> Open(
      std::unique_ptr<ChunkSource> source, std::unique_ptr<DataKey> key,
      const std::string& backup_id,
      uint64_t cache_bytes = kDefaultExportCacheBytes);

  const Manifest& manifest() const { return reader_->manifest(); }
  uint64_t size() const { return reader_->size(); }

  // Fills `buf` with `length` bytes at `offset`. OutOfRange past the end;
  // DataLoss naming the chunk index, id and file if a chunk is damaged;
  // NotFound if a chunk file is missing. Errors are not cached: a later read
  // retries.
  Status Read(uint64_t offset, size_t length, char* buf);

  // Data and zero runs covering [offset, offset + length), in order,
  // contiguous, adjacent runs of one kind merged; clipped to the image.
  // With `first_only` stops after the run that contains `offset`.
  // OutOfRange if `offset` is past the end.
  StatusOr<std::vector<Extent>> Extents(uint64_t offset, uint64_t length,
                                        bool first_only = false) const;

  // Cache statistics, for tests and logs.
  uint64_t chunk_decodes() const;
  uint64_t cached_bytes() const;

 private:
  struct Slot;
  ExportedImage(std::unique_ptr<ChunkSource> source,
                std::unique_ptr<DataKey> key,
                std::unique_ptr<ImageReader> reader, uint64_t cache_bytes);
  // The decoded chunk `index` (not a zero chunk), from the cache or decoded
  // now; waits if another thread is decoding it.
  StatusOr<std::shared_ptr<const std::string>> Chunk(uint64_t index);

  const std::unique_ptr<ChunkSource> source_;
  const std::unique_ptr<DataKey> key_;
  const std::unique_ptr<ImageReader> reader_;
  const uint64_t cache_bytes_;

  mutable std::mutex mu_;
  std::condition_variable decoded_;
  // Chunks decoded or being decoded, by index. Guarded by mu_.
  std::unordered_map<uint64_t, std::shared_ptr<Slot>> slots_;
  // Indices of decoded chunks, most recently used first. Guarded by mu_.
  std::list<uint64_t> lru_;
  uint64_t cached_bytes_ = 0;   // guarded by mu_
  uint64_t chunk_decodes_ = 0;  // guarded by mu_
};

// The errno an NBD client should see for a failed read: EIO for damaged or
// missing data (DataLoss, NotFound, Internal, ...), EINVAL for OutOfRange and
// InvalidArgument, ENOMEM for ResourceExhausted, EPERM for PermissionDenied,
// ESHUTDOWN for Cancelled/Unavailable, ENOTSUP for Unimplemented.
// REQUIRES: !status.ok().
int StatusToErrno(const Status& status);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_EXPORTED_IMAGE_H_
