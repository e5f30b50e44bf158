// MediaServiceHandler: the gRPC face of the media agent's DataPath. Thin by
// design: it authenticates the caller (client certificate, role agent),
// converts proto to domain types, calls DataPath, and converts the Status.
// A process that knows more about its callers (cairn-server's embedded media
// agent, which shares the catalog) adds its own check with a PeerCheck.
//
// Thread safety: thread-safe (DataPath is).
#ifndef CAIRN_MEDIA_AGENT_MEDIA_SERVICE_H_
#define CAIRN_MEDIA_AGENT_MEDIA_SERVICE_H_

#include <functional>

#include "cairn/v1/media.grpc.pb.h"
#include "common/message_limits.h"
#include "common/peer_identity.h"
#include "media_agent/data_path.h"

namespace cairn {

// Most ids one HasChunks call may carry.
inline constexpr int kMaxIdsPerHasChunks = 4096;

class MediaServiceHandler final : public v1::MediaService::Service {
 public:
  // Extra authorization of the caller, run on every call after its
  // certificate has been identified and before its role is checked; a
  // non-OK result is the call's answer. Must be thread-safe.
  using PeerCheck = std::function<Status(const PeerIdentity&)>;

  // `data_path` is not owned and must outlive the handler. `check_peer` may
  // be empty (no check beyond certificate and role).
  explicit MediaServiceHandler(DataPath* data_path,
                               PeerCheck check_peer = nullptr)
      : data_path_(data_path), check_peer_(std::move(check_peer)) {}

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
  // The calling agent's identity: certificate, then `check_peer_`, then
  // role agent. Otherwise the error to return.
  StatusOr<std::string> Caller(grpc::ServerContext* ctx,
                               std::string_view what) const;

  DataPath* const data_path_;
  const PeerCheck check_peer_;
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_MEDIA_SERVICE_H_
