// EmbeddedMediaService: the MediaService of the media agent cairn-server
// hosts in-process (--embedded-media). It is media_agent/media_service.h's
// MediaServiceHandler with the storage manager's revocation check in front:
// because the embedded media agent shares the catalog, a revoked client is
// refused on every data-path call at once, not only when its ticket expires.
//
// Thread safety: thread-safe.
#ifndef CAIRN_SERVER_EMBEDDED_MEDIA_SERVICE_H_
#define CAIRN_SERVER_EMBEDDED_MEDIA_SERVICE_H_

#include "cairn/v1/media.grpc.pb.h"
#include "media_agent/media_service.h"
#include "server/peer_authorizer.h"

namespace cairn {

class EmbeddedMediaService final : public v1::MediaService::Service {
 public:
  // Neither is owned; both must outlive the service.
  EmbeddedMediaService(DataPath* data_path, const PeerAuthorizer* authorizer)
      : inner_(data_path), authorizer_(authorizer) {}

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
  // OK if the caller presented a certificate the catalog still accepts (or
  // none: the inner handler then refuses it as UNAUTHENTICATED).
  grpc::Status CheckCaller(grpc::ServerContext* ctx) const;

  MediaServiceHandler inner_;
  const PeerAuthorizer* const authorizer_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_EMBEDDED_MEDIA_SERVICE_H_
