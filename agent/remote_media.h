// RemoteMedia: the agent's client for a media agent's data path, as a
// ChunkSink (backup) and a ChunkSource (restore) over gRPC. Every call
// carries the job's signed ticket and a deadline; errors come back as the
// media agent's Status (PermissionDenied, DataLoss, ...) with the address.
//
// Thread safety: thread-safe (gRPC stubs are); the backup pipeline's workers
// call it concurrently, which is the in-flight window.
#ifndef CAIRN_AGENT_REMOTE_MEDIA_H_
#define CAIRN_AGENT_REMOTE_MEDIA_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "cairn/v1/media.grpc.pb.h"
#include "common/chunk_sink.h"
#include "common/chunk_source.h"

namespace cairn {

class RemoteMedia final : public ChunkSink, public ChunkSource {
 public:
  // `channel` is shared. `ticket` is the job's SignedTicket bytes.
  RemoteMedia(std::shared_ptr<grpc::Channel> channel, std::string address,
              std::string ticket,
              std::chrono::milliseconds deadline = std::chrono::seconds(60));

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

 private:
  void Prepare(grpc::ClientContext* ctx) const;
  Status FromGrpc(const grpc::Status& s, std::string_view what) const;

  std::unique_ptr<v1::MediaService::Stub> stub_;
  const std::string address_;
  const std::string ticket_;
  const std::chrono::milliseconds deadline_;
};

// Channel arguments every Cairn client uses for the media data path
// (message size limits matching the service).
grpc::ChannelArguments MediaChannelArguments();

}  // namespace cairn

#endif  // CAIRN_AGENT_REMOTE_MEDIA_H_
