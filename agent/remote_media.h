// RemoteMedia: the agent's client for a media agent's data path, as a
// ChunkSink (backup) and a ChunkSource (restore) over gRPC. Every call
// carries the job's signed ticket and a deadline; errors come back as the
// media agent's Status (PermissionDenied, DataLoss, ...) with the address.
//
// PutChunk is asynchronous: it queues the chunk for kUploaders sender
// threads and returns while the media agent stores it, so the pipeline's
// workers read, hash and compress the next batch instead of waiting a round
// trip per chunk. At most `max_in_flight_bytes` of chunks are queued or in
// flight (at least one chunk); a PutChunk beyond that waits for room. The
// first failed put is returned by the next PutChunk and by Commit, which
// waits for every put to finish before it commits; the destructor cancels
// puts in flight, drops queued ones and joins the senders.
//
// Why threads with synchronous calls rather than gRPC's callback API: on
// gRPC 1.51 the callback client cost about twice the CPU per byte for 4 MiB
// messages in the network benchmark (tests/bench/NETWORK.md).
//
// Thread safety: thread-safe (gRPC stubs are); the backup pipeline's workers
// call it concurrently.
#ifndef CAIRN_AGENT_REMOTE_MEDIA_H_
#define CAIRN_AGENT_REMOTE_MEDIA_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cairn/v1/media.grpc.pb.h"
#include "common/chunk_sink.h"
#include "common/chunk_source.h"

namespace cairn {

class RemoteMedia final : public ChunkSink, public ChunkSource {
 public:
  // `channel` is shared. `ticket` is the job's SignedTicket bytes.
  RemoteMedia(std::shared_ptr<grpc::Channel> channel, std::string address,
              std::string ticket,
              std::chrono::milliseconds deadline = std::chrono::seconds(60),
              uint64_t max_in_flight_bytes = kDefaultMaxInFlightBytes);
  ~RemoteMedia() override;

  static constexpr uint64_t kDefaultMaxInFlightBytes = 16u << 20;
  static constexpr int kUploaders = 4;

  // ChunkSink
  StatusOr<std::vector<bool>> HasChunks(std::span<const ChunkId> ids) override;
  Status PutChunk(const ChunkId& id, std::string_view stored) override;
  Status Commit(const std::string& backup_id,
                std::string_view encoded_manifest) override;

  // ChunkSource
  StatusOr<Manifest> LoadManifest(const std::string& backup_id,
                                  const DataKey* key) const override;
  StatusOr<std::string> GetChunk(const ChunkId& id) const override;
  std::string DescribeChunk(const ChunkId& id) const override;

  // The receipt the media agent returned from the last successful Commit.
  std::string commit_receipt() const;

  // Waits until no put is in flight; returns the first put's error, if any.
  Status Flush();

 private:
  void Prepare(grpc::ClientContext* ctx) const;
  Status FromGrpc(const grpc::Status& s, std::string_view what) const;

  std::unique_ptr<v1::MediaService::Stub> stub_;
  const std::string address_;
  const std::string ticket_;
  const std::chrono::milliseconds deadline_;
  const uint64_t max_in_flight_bytes_;

  struct PendingPut;
  void Upload();  // a sender thread's loop

  mutable std::mutex mu_;
  std::condition_variable put_done_;  // a put finished
  std::condition_variable work_;      // a put was queued, or stopping
  std::string receipt_;               // guarded by mu_
  std::deque<std::unique_ptr<PendingPut>> queue_;  // guarded by mu_
  std::set<PendingPut*> in_flight_;                // guarded by mu_
  uint64_t pending_bytes_ = 0;          // queued + in flight; guarded by mu_
  Status put_error_;                    // first failed put; guarded by mu_
  bool stopping_ = false;               // guarded by mu_
  std::vector<std::thread> uploaders_;  // started by the first PutChunk
};

// Channel arguments every Cairn client uses for the media data path
// (message size limits matching the service).
grpc::ChannelArguments MediaChannelArguments();

}  // namespace cairn

#endif  // CAIRN_AGENT_REMOTE_MEDIA_H_
