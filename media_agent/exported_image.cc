#include "media_agent/exported_image.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/strings.h"

namespace cairn {

struct ExportedImage::Slot {
  bool ready = false;
  Status status;
  std::shared_ptr<const std::string> data;
  std::list<uint64_t>::iterator lru_pos;  // valid once ready and ok
};

ExportedImage::ExportedImage(std::unique_ptr<ChunkSource> source,
                             std::unique_ptr<DataKey> key,
                             std::unique_ptr<ImageReader> reader,
                             uint64_t cache_bytes)
    : source_(std::move(source)),
      key_(std::move(key)),
      reader_(std::move(reader)),
      cache_bytes_(cache_bytes) {}

StatusOr<std::unique_ptr<ExportedImage>> ExportedImage::Open(
    std::unique_ptr<ChunkSource> source, std::unique_ptr<DataKey> key,
    const std::string& backup_id, uint64_t cache_bytes) {
  if (source == nullptr) {
    return absl::InvalidArgumentError("ExportedImage needs a chunk source");
  }
  // ImageReader's own cache is not used (Chunk() below has one that decodes
  // each chunk once under concurrency), hence one slot.
  CAIRN_ASSIGN_OR_RETURN(
      auto reader, ImageReader::Open(source.get(), backup_id, key.get(), 1));
  return std::unique_ptr<ExportedImage>(new ExportedImage(
      std::move(source), std::move(key), std::move(reader), cache_bytes));
}

StatusOr<std::shared_ptr<const std::string>> ExportedImage::Chunk(
    uint64_t index) {
  std::shared_ptr<Slot> slot;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = slots_.find(index);
    if (it != slots_.end()) {
      slot = it->second;
      decoded_.wait(lock, [&] { return slot->ready; });
      if (!slot->status.ok()) return slot->status;
      // Still cached (an error slot is removed before waiters wake, and a
      // ready slot only leaves the map through eviction, which also unlinks
      // it from lru_ - check membership through the map).
      auto again = slots_.find(index);
      if (again != slots_.end() && again->second == slot) {
        lru_.splice(lru_.begin(), lru_, slot->lru_pos);
      }
      return slot->data;
    }
    slot = std::make_shared<Slot>();
    slots_.emplace(index, slot);
    ++chunk_decodes_;
  }
  // Decode outside the lock; others asking for this chunk wait on `slot`.
  auto data = std::make_shared<std::string>();
  Status s = reader_->ReadChunk(index, data.get());
  {
    std::lock_guard<std::mutex> lock(mu_);
    slot->ready = true;
    slot->status = s;
    if (!s.ok()) {
      slots_.erase(index);
    } else {
      slot->data = std::move(data);
      lru_.push_front(index);
      slot->lru_pos = lru_.begin();
      cached_bytes_ += slot->data->size();
      // Evict least recently used chunks, always keeping the newest one.
      while (cached_bytes_ > cache_bytes_ && lru_.size() > 1) {
        uint64_t victim = lru_.back();
        lru_.pop_back();
        auto vit = slots_.find(victim);
        cached_bytes_ -= vit->second->data->size();
        slots_.erase(vit);
      }
    }
  }
  decoded_.notify_all();
  if (!s.ok()) return s;
  return slot->data;
}

Status ExportedImage::Read(uint64_t offset, size_t length, char* buf) {
  const Manifest& m = manifest();
  if (offset > m.image_size || length > m.image_size - offset) {
    return absl::OutOfRangeError(StrCat("read of ", length, " bytes at ",
                                        offset, " is past the end of backup '",
                                        m.backup_id, "' (", m.image_size,
                                        " bytes)"));
  }
  const uint64_t cs = m.chunk_size;
  while (length > 0) {
    uint64_t index = offset / cs;
    uint64_t within = offset % cs;
    size_t n = static_cast<size_t>(
        std::min<uint64_t>(length, m.ChunkLength(index) - within));
    if (m.chunks[index].IsZero()) {
      std::memset(buf, 0, n);
    } else {
      auto chunk = Chunk(index);
      if (!chunk.ok()) {
        return Status(chunk.status().code(),
                      StrCat("backup '", m.backup_id, "' at offset ", offset,
                             " (chunk ", index, ", ", m.chunks[index].ToHex(),
                             "): ", ToStd(chunk.status().message())));
      }
      std::memcpy(buf, (*chunk)->data() + within, n);
    }
    buf += n;
    offset += n;
    length -= n;
  }
  return absl::OkStatus();
}

StatusOr<std::vector<ExportedImage::Extent>> ExportedImage::Extents(
    uint64_t offset, uint64_t length, bool first_only) const {
  const Manifest& m = manifest();
  if (offset >= m.image_size) {
    return absl::OutOfRangeError(StrCat("extents at ", offset,
                                        " are past the end of backup '",
                                        m.backup_id, "'"));
  }
  const uint64_t end = offset + std::min(length, m.image_size - offset);
  const uint64_t cs = m.chunk_size;
  std::vector<Extent> out;
  uint64_t pos = offset;
  while (pos < end) {
    uint64_t index = pos / cs;
    uint64_t chunk_end =
        std::min<uint64_t>(index * cs + m.ChunkLength(index), end);
    bool zero = m.chunks[index].IsZero();
    if (!out.empty() && out.back().zero == zero) {
      out.back().length += chunk_end - pos;
    } else {
      if (first_only && !out.empty()) break;
      out.push_back({pos, chunk_end - pos, zero});
    }
    pos = chunk_end;
  }
  return out;
}

uint64_t ExportedImage::chunk_decodes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return chunk_decodes_;
}

uint64_t ExportedImage::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_bytes_;
}

int StatusToErrno(const Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kInvalidArgument:
      return EINVAL;
    case absl::StatusCode::kResourceExhausted:
      return ENOMEM;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return EPERM;
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnavailable:
      return ESHUTDOWN;
    case absl::StatusCode::kUnimplemented:
      return ENOTSUP;
    default:
      return EIO;  // DataLoss, NotFound, FailedPrecondition, Internal, ...
  }
}

}  // namespace cairn
