// ForwardingSink: a ChunkSink that passes everything to another sink. Tests
// subclass it to intercept one call (hold a commit, fail it, record it).
#ifndef CAIRN_TESTS_TESTING_FORWARDING_SINK_H_
#define CAIRN_TESTS_TESTING_FORWARDING_SINK_H_

#include <string>
#include <string_view>
#include <vector>

#include "common/chunk_sink.h"

namespace cairn::testing {

class ForwardingSink : public ChunkSink {
 public:
  explicit ForwardingSink(ChunkSink* base) : base_(base) {}
  StatusOr<std::vector<bool>> HasChunks(std::span<const ChunkId> ids) override {
    return base_->HasChunks(ids);
  }
  Status PutChunk(const ChunkId& id, std::string_view stored) override {
    return base_->PutChunk(id, stored);
  }
  Status Commit(const std::string& backup_id,
                std::string_view manifest) override {
    return base_->Commit(backup_id, manifest);
  }

 protected:
  ChunkSink* const base_;
};

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_FORWARDING_SINK_H_
