#include "agent/cancellation.h"

namespace cairn {

Status JobCancelledStatus() { return absl::CancelledError("job cancelled"); }

StatusOr<std::vector<bool>> CancellableChunkSink::HasChunks(
    std::span<const ChunkId> ids) {
  if (flag_->cancelled()) return JobCancelledStatus();
  return base_->HasChunks(ids);
}

Status CancellableChunkSink::PutChunk(const ChunkId& id,
                                      std::string_view stored) {
  if (flag_->cancelled()) return JobCancelledStatus();
  return base_->PutChunk(id, stored);
}

Status CancellableChunkSink::Commit(const std::string& backup_id,
                                    std::string_view encoded_manifest) {
  if (flag_->cancelled()) return JobCancelledStatus();
  return base_->Commit(backup_id, encoded_manifest);
}

StatusOr<Manifest> CancellableChunkSource::LoadManifest(
    const std::string& backup_id, const DataKey* key) const {
  if (flag_->cancelled()) return JobCancelledStatus();
  return base_->LoadManifest(backup_id, key);
}

StatusOr<std::string> CancellableChunkSource::GetChunk(
    const ChunkId& id) const {
  if (flag_->cancelled()) return JobCancelledStatus();
  return base_->GetChunk(id);
}

}  // namespace cairn
