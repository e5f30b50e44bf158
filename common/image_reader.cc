#include "common/image_reader.h"

#include <cstring>

#include "common/chunk_format.h"
#include "common/coding.h"
#include "common/strings.h"

namespace cairn {

ImageReader::ImageReader(const ChunkSource* source, Manifest manifest,
                         const DataKey* key, size_t cache_chunks)
    : source_(source),
      manifest_(std::move(manifest)),
      key_(key),
      cache_capacity_(cache_chunks == 0 ? 1 : cache_chunks) {}

StatusOr<std::unique_ptr<ImageReader>> ImageReader::Open(
    const ChunkSource* source, const std::string& backup_id, const DataKey* key,
    size_t cache_chunks) {
  CAIRN_ASSIGN_OR_RETURN(Manifest m, source->LoadManifest(backup_id, key));
  if (m.encrypted() && key == nullptr) {
    return absl::FailedPreconditionError(StrCat(
        "backup '", backup_id, "' is encrypted (key ",
        HexEncode(m.key_fingerprint), "); a data key is required to read it"));
  }
  return std::unique_ptr<ImageReader>(
      new ImageReader(source, std::move(m), key, cache_chunks));
}

Status ImageReader::ReadChunk(uint64_t index, std::string* out) const {
  const ChunkId& id = manifest_.chunks[index];
  uint32_t length = manifest_.ChunkLength(index);
  if (id.IsZero()) {
    out->assign(length, '\0');
    return absl::OkStatus();
  }
  CAIRN_ASSIGN_OR_RETURN(std::string stored, source_->GetChunk(id));
  Status s = DecodeChunk(id, stored, key_, out);
  if (!s.ok()) {
    return Status(s.code(),
                  StrCat("chunk ", index, " (", id.ToHex(), ", ",
                         source_->DescribeChunk(id), "): ", s.message()));
  }
  if (out->size() != length) {
    return absl::DataLossError(StrCat("chunk ", index, " (", id.ToHex(),
                                      ") holds ", out->size(),
                                      " bytes, manifest expects ", length));
  }
  return absl::OkStatus();
}

StatusOr<std::shared_ptr<const std::string>> ImageReader::CachedChunk(
    uint64_t index) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if (it->first == index) {
        cache_.splice(cache_.begin(), cache_, it);
        return cache_.front().second;
      }
    }
  }
  auto data = std::make_shared<std::string>();
  CAIRN_RETURN_IF_ERROR(ReadChunk(index, data.get()));
  std::lock_guard<std::mutex> lock(mu_);
  cache_.emplace_front(index, data);
  while (cache_.size() > cache_capacity_) cache_.pop_back();
  return std::shared_ptr<const std::string>(data);
}

Status ImageReader::ReadAt(uint64_t offset, size_t length, char* buf) {
  if (offset > manifest_.image_size || length > manifest_.image_size - offset) {
    return absl::OutOfRangeError(StrCat("read of ", length, " bytes at ",
                                        offset, " is past the end of a ",
                                        manifest_.image_size, "-byte image"));
  }
  const uint64_t cs = manifest_.chunk_size;
  while (length > 0) {
    uint64_t index = offset / cs;
    uint64_t within = offset % cs;
    size_t n = static_cast<size_t>(
        std::min<uint64_t>(length, manifest_.ChunkLength(index) - within));
    if (manifest_.chunks[index].IsZero()) {
      std::memset(buf, 0, n);
    } else {
      CAIRN_ASSIGN_OR_RETURN(auto chunk, CachedChunk(index));
      std::memcpy(buf, chunk->data() + within, n);
    }
    buf += n;
    offset += n;
    length -= n;
  }
  return absl::OkStatus();
}

}  // namespace cairn
