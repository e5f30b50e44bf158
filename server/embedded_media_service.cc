#include "server/embedded_media_service.h"

#include "common/peer_identity.h"

namespace cairn {

grpc::Status EmbeddedMediaService::CheckCaller(grpc::ServerContext* ctx) const {
  auto peer = PeerIdentityFromContext(*ctx);
  if (!peer.ok()) return grpc::Status::OK;  // the inner handler refuses it
  return ToGrpcStatus(authorizer_->CheckActive(*peer));
}

grpc::Status EmbeddedMediaService::HasChunks(grpc::ServerContext* ctx,
                                             const v1::HasChunksRequest* req,
                                             v1::HasChunksResponse* resp) {
  if (grpc::Status s = CheckCaller(ctx); !s.ok()) return s;
  return inner_.HasChunks(ctx, req, resp);
}

grpc::Status EmbeddedMediaService::PutChunk(grpc::ServerContext* ctx,
                                            const v1::PutChunkRequest* req,
                                            v1::PutChunkResponse* resp) {
  if (grpc::Status s = CheckCaller(ctx); !s.ok()) return s;
  return inner_.PutChunk(ctx, req, resp);
}

grpc::Status EmbeddedMediaService::CommitBackup(
    grpc::ServerContext* ctx, const v1::CommitBackupRequest* req,
    v1::CommitBackupResponse* resp) {
  if (grpc::Status s = CheckCaller(ctx); !s.ok()) return s;
  return inner_.CommitBackup(ctx, req, resp);
}

grpc::Status EmbeddedMediaService::GetChunk(grpc::ServerContext* ctx,
                                            const v1::GetChunkRequest* req,
                                            v1::GetChunkResponse* resp) {
  if (grpc::Status s = CheckCaller(ctx); !s.ok()) return s;
  return inner_.GetChunk(ctx, req, resp);
}

grpc::Status EmbeddedMediaService::GetManifest(
    grpc::ServerContext* ctx, const v1::GetManifestRequest* req,
    v1::GetManifestResponse* resp) {
  if (grpc::Status s = CheckCaller(ctx); !s.ok()) return s;
  return inner_.GetManifest(ctx, req, resp);
}

}  // namespace cairn
