// ImageReader: random-access reads of a backed-up image, straight from the
// chunk store through a ChunkSource (local repository or media agent).
// Backs full restores, the NBD export and file-level browse.
//
// A read of [offset, offset+length) touches only the chunks it overlaps;
// zero chunks read as zeros without I/O. Decoded chunks are kept in a small
// LRU cache so many small sequential reads (NBD, file systems) decode each
// chunk once.
//
// Thread safety: thread-safe.
#ifndef CAIRN_COMMON_IMAGE_READER_H_
#define CAIRN_COMMON_IMAGE_READER_H_

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "common/chunk_source.h"
#include "common/data_key.h"
#include "common/manifest.h"
#include "common/status.h"

namespace cairn {

class ImageReader {
 public:
  // Loads and checks `backup_id`'s manifest. An encrypted backup needs `key`
  // (FailedPrecondition otherwise); the manifest signature is verified with
  // it. `source` and `key` are not owned and must outlive the reader.
  static StatusOr<std::unique_ptr<ImageReader>> Open(
      const ChunkSource* source, const std::string& backup_id,
      const DataKey* key, size_t cache_chunks = 8);

  const Manifest& manifest() const { return manifest_; }
  uint64_t size() const { return manifest_.image_size; }

  // Fills `buf` with `length` bytes of the image at `offset`. OutOfRange if
  // the range extends past the image; DataLoss (naming chunk and file) if a
  // chunk is damaged; NotFound if one is missing.
  Status ReadAt(uint64_t offset, size_t length, char* buf);

  // Decodes chunk `index` into `*out` (zeros for a zero chunk), bypassing
  // the cache. REQUIRES: index < manifest().chunks.size().
  Status ReadChunk(uint64_t index, std::string* out) const;

 private:
  ImageReader(const ChunkSource* source, Manifest manifest, const DataKey* key,
              size_t cache_chunks);
  StatusOr<std::shared_ptr<const std::string>> CachedChunk(uint64_t index);

  const ChunkSource* const source_;
  const Manifest manifest_;
  const DataKey* const key_;
  const size_t cache_capacity_;

  std::mutex mu_;
  // Most recently used first. Guarded by mu_.
  std::list<std::pair<uint64_t, std::shared_ptr<const std::string>>> cache_;
};

}  // namespace cairn

#endif  // CAIRN_COMMON_IMAGE_READER_H_
