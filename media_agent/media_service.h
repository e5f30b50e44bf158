// MediaServiceHandler: the gRPC face of the media agent's DataPath. Thin by
// design: it authenticates the caller (client certificate, role agent),
// converts proto to domain types, calls DataPath, and converts the Status.
//
// Thread safety: thread-safe (DataPath is).
#ifndef CAIRN_MEDIA_AGENT_MEDIA_SERVICE_H_
#define CAIRN_MEDIA_AGENT_MEDIA_SERVICE_H_

#include "cairn/v1/media.grpc.pb.h"
#include "media_agent/data_path.h"

namespace cairn {

// Largest message the service accepts: one 16 MiB chunk plus its header and
// the request's other fields.
inline constexpr int kMediaMaxMessageBytes = 17 << 20;
// Most ids one HasChunks call may carry.
inline constexpr int kMaxIdsPerHasChunks = 4096;

class MediaServiceHandler final : public v1::MediaService::Service {
 public:
  // `data_path` is not owned and must outlive the handler.
  explicit MediaServiceHandler(DataPath* data_path) : data_path_(data_path) {}

  grpc::Status HasChunks(grpc::ServerContext* ctx,
                         const v1::HasChunksRequest* req,
                         v1::HasChunksResponse* resp) override;
  grpc::Status PutChunk(grpc::ServerContext* ctx,
                        const v1::PutChunkRequest* req,
                        v1::PutChunkResponse* resp) override;
  grpc::Status CommitBackup(grpc::ServerContext* ctx,
                            const v1::CommitBackupRequest* req,
                            v1::CommitBackupResponse* resp) override;
  grpc::Status GetChunk(grpc::ServerContext* ctx,
                        const v1::GetChunkRequest* req,
                        v1::GetChunkResponse* resp) override;
  grpc::Status GetManifest(grpc::ServerContext* ctx,
                           const v1::GetManifestRequest* req,
                           v1::GetManifestResponse* resp) override;

 private:
  DataPath* const data_path_;
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_MEDIA_SERVICE_H_
