// Cooperative cancellation of an agent job (CancelCommand, SIGTERM).
//
// The backup pipeline and image restore have no cancellation hook of their
// own; they stop at their first error. So a cancelled job is made to fail
// at its next call into the media agent:
//   CancellableChunkSink    wraps the backup's ChunkSink: once the flag is
//                           set, HasChunks/PutChunk/Commit return Cancelled,
//                           so the pipeline stops and never commits a
//                           manifest.
//   CancellableChunkSource  wraps the restore's ChunkSource: GetChunk (and
//                           LoadManifest) return Cancelled, so the restore
//                           stops between chunks.
// A call already in flight finishes; the next one is refused.
//
// Thread safety: all classes are thread-safe; the flag may be set from any
// thread while the pipeline's workers call the wrappers.
#ifndef CAIRN_AGENT_CANCELLATION_H_
#define CAIRN_AGENT_CANCELLATION_H_

#include <atomic>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/chunk_sink.h"
#include "common/chunk_source.h"
#include "common/status.h"

namespace cairn {

class CancellationFlag {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> cancelled_{false};
};

// The Status a cancelled job ends with: Cancelled "job cancelled".
Status JobCancelledStatus();

class CancellableChunkSink final : public ChunkSink {
 public:
  // Neither argument is owned; both must outlive the wrapper.
  CancellableChunkSink(ChunkSink* base, const CancellationFlag* flag)
      : base_(base), flag_(flag) {}

  StatusOr<std::vector<bool>> HasChunks(std::span<const ChunkId> ids) override;
  Status PutChunk(const ChunkId& id, std::string_view stored) override;
  Status Commit(const std::string& backup_id,
                std::string_view encoded_manifest) override;

 private:
  ChunkSink* const base_;
  const CancellationFlag* const flag_;
};

class CancellableChunkSource final : public ChunkSource {
 public:
  // Neither argument is owned; both must outlive the wrapper.
  CancellableChunkSource(const ChunkSource* base, const CancellationFlag* flag)
      : base_(base), flag_(flag) {}

  StatusOr<Manifest> LoadManifest(const std::string& backup_id,
                                  const DataKey* key) const override;
  StatusOr<std::string> GetChunk(const ChunkId& id) const override;
  std::string DescribeChunk(const ChunkId& id) const override {
    return base_->DescribeChunk(id);
  }

 private:
  const ChunkSource* const base_;
  const CancellationFlag* const flag_;
};

}  // namespace cairn

#endif  // CAIRN_AGENT_CANCELLATION_H_
