#include "media_agent/media_service.h"

#include "common/peer_identity.h"
#include "common/strings.h"

namespace cairn {
namespace {

StatusOr<ChunkId> IdFromBytes(const std::string& bytes) {
  if (bytes.size() != ChunkId::kSize) {
    return absl::InvalidArgumentError(StrCat(
        "chunk id must be ", ChunkId::kSize, " bytes, got ", bytes.size()));
  }
  return ChunkId::FromBytes(reinterpret_cast<const uint8_t*>(bytes.data()));
}

}  // namespace

StatusOr<std::string> MediaServiceHandler::Caller(grpc::ServerContext* ctx,
                                                  std::string_view what) const {
  CAIRN_ASSIGN_OR_RETURN(PeerIdentity peer, PeerIdentityFromContext(*ctx));
  if (check_peer_) CAIRN_RETURN_IF_ERROR(check_peer_(peer));
  CAIRN_RETURN_IF_ERROR(RequireRole(peer, {Role::kAgent}, what));
  return peer.identity;
}

grpc::Status MediaServiceHandler::HasChunks(grpc::ServerContext* ctx,
                                            const v1::HasChunksRequest* req,
                                            v1::HasChunksResponse* resp) {
  auto caller = Caller(ctx, "MediaService.HasChunks");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (req->ids_size() > kMaxIdsPerHasChunks) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        StrCat("HasChunks carries ", req->ids_size(), " ids; the limit is ",
               kMaxIdsPerHasChunks)));
  }
  std::vector<ChunkId> ids;
  ids.reserve(req->ids_size());
  for (const auto& bytes : req->ids()) {
    auto id = IdFromBytes(bytes);
    if (!id.ok()) return ToGrpcStatus(id.status());
    ids.push_back(*id);
  }
  auto present = data_path_->HasChunks(*caller, req->ticket(), ids);
  if (!present.ok()) return ToGrpcStatus(present.status());
  for (bool b : *present) resp->add_present(b);
  return grpc::Status::OK;
}

grpc::Status MediaServiceHandler::PutChunk(grpc::ServerContext* ctx,
                                           const v1::PutChunkRequest* req,
                                           v1::PutChunkResponse*) {
  auto caller = Caller(ctx, "MediaService.PutChunk");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  auto id = IdFromBytes(req->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  return ToGrpcStatus(
      data_path_->PutChunk(*caller, req->ticket(), *id, req->stored()));
}

grpc::Status MediaServiceHandler::CommitBackup(
    grpc::ServerContext* ctx, const v1::CommitBackupRequest* req,
    v1::CommitBackupResponse* resp) {
  auto caller = Caller(ctx, "MediaService.CommitBackup");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  auto receipt = data_path_->CommitBackup(*caller, req->ticket(),
                                          req->backup_id(), req->manifest());
  if (!receipt.ok()) return ToGrpcStatus(receipt.status());
  resp->set_receipt(std::move(*receipt));
  return grpc::Status::OK;
}

grpc::Status MediaServiceHandler::GetChunk(grpc::ServerContext* ctx,
                                           const v1::GetChunkRequest* req,
                                           v1::GetChunkResponse* resp) {
  auto caller = Caller(ctx, "MediaService.GetChunk");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  auto id = IdFromBytes(req->id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  auto stored = data_path_->GetChunk(*caller, req->ticket(), *id);
  if (!stored.ok()) return ToGrpcStatus(stored.status());
  *resp->mutable_stored() = std::move(*stored);
  return grpc::Status::OK;
}

grpc::Status MediaServiceHandler::GetManifest(grpc::ServerContext* ctx,
                                              const v1::GetManifestRequest* req,
                                              v1::GetManifestResponse* resp) {
  auto caller = Caller(ctx, "MediaService.GetManifest");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  auto manifest =
      data_path_->GetManifest(*caller, req->ticket(), req->backup_id());
  if (!manifest.ok()) return ToGrpcStatus(manifest.status());
  *resp->mutable_manifest() = std::move(*manifest);
  return grpc::Status::OK;
}

}  // namespace cairn
