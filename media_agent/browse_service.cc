#include "media_agent/browse_service.h"

#include "common/message_limits.h"
#include "common/strings.h"

namespace cairn {
namespace {

std::optional<uint32_t> PartitionOf(const v1::PartitionRef& ref) {
  if (!ref.has_number()) return std::nullopt;
  return ref.number();
}

}  // namespace

StatusOr<std::string> BrowseServiceHandler::Caller(
    grpc::ServerContext* ctx, std::string_view what) const {
  CAIRN_ASSIGN_OR_RETURN(PeerIdentity peer, PeerIdentityFromContext(*ctx));
  if (check_peer_) CAIRN_RETURN_IF_ERROR(check_peer_(peer));
  CAIRN_RETURN_IF_ERROR(RequireRole(
      peer, {Role::kAdmin, Role::kOperator, Role::kHelpdesk, Role::kAgent},
      what));
  return peer.identity;
}

grpc::Status BrowseServiceHandler::List(grpc::ServerContext* ctx,
                                        const v1::BrowseListRequest* req,
                                        v1::BrowseListResponse* resp) {
  auto caller = Caller(ctx, "BrowseService.List");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  auto listing = browser_->List(*caller, req->ticket(),
                                PartitionOf(req->partition()), req->path());
  if (!listing.ok()) return ToGrpcStatus(listing.status());
  *resp->mutable_filesystem() = std::move(listing->filesystem);
  *resp->mutable_directory() = std::move(listing->directory);
  for (auto& e : listing->entries) *resp->add_entries() = std::move(e);
  resp->set_from_catalogue(listing->from_catalogue);
  if (resp->ByteSizeLong() > static_cast<size_t>(kMediaMaxMessageBytes)) {
    return ToGrpcStatus(absl::ResourceExhaustedError(
        StrCat("the listing of ", req->path(), " has ", resp->entries_size(),
               " entries and exceeds the ", kMediaMaxMessageBytes,
               "-byte message limit; use browse find")));
  }
  return grpc::Status::OK;
}

grpc::Status BrowseServiceHandler::Find(grpc::ServerContext* ctx,
                                        const v1::BrowseFindRequest* req,
                                        v1::BrowseFindResponse* resp) {
  auto caller = Caller(ctx, "BrowseService.Find");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  auto found = browser_->Find(*caller, req->ticket(), req->pattern(),
                              PartitionOf(req->partition()), req->limit());
  if (!found.ok()) return ToGrpcStatus(found.status());
  size_t bytes = 0;
  for (auto& [partition, entry] : found->matches) {
    bytes += entry.ByteSizeLong() + 16;
    if (bytes > static_cast<size_t>(kMediaMaxMessageBytes) - 4096) {
      resp->set_truncated(true);
      break;
    }
    v1::BrowseMatch* m = resp->add_matches();
    m->set_partition(partition);
    *m->mutable_entry() = std::move(entry);
  }
  if (found->truncated) resp->set_truncated(true);
  resp->set_from_catalogue(true);
  return grpc::Status::OK;
}

grpc::Status BrowseServiceHandler::Read(
    grpc::ServerContext* ctx, const v1::BrowseReadRequest* req,
    grpc::ServerWriter<v1::BrowseReadResponse>* writer) {
  auto caller = Caller(ctx, "BrowseService.Read");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  v1::BrowseReadResponse pending;
  auto on_entry = [&](const v1::FileEntry& entry) -> Status {
    *pending.mutable_entry() = entry;
    return Status();
  };
  auto on_data = [&](std::string_view data) -> Status {
    if (ctx->IsCancelled()) return absl::CancelledError("the caller went away");
    pending.set_data(std::string(data));
    if (!writer->Write(pending)) {
      return absl::CancelledError("the caller stopped reading");
    }
    pending.Clear();
    return Status();
  };
  Status s = browser_->Read(*caller, req->ticket(),
                            PartitionOf(req->partition()), req->path(),
                            req->offset(), req->length(), on_entry, on_data);
  if (!s.ok()) return ToGrpcStatus(s);
  // An empty file (or range) still sends its entry.
  if (pending.has_entry() && !writer->Write(pending)) {
    return ToGrpcStatus(absl::CancelledError("the caller stopped reading"));
  }
  return grpc::Status::OK;
}

grpc::Status BrowseServiceHandler::Catalogue(
    grpc::ServerContext* ctx, const v1::BrowseCatalogueRequest* req,
    v1::BrowseCatalogueResponse* resp) {
  auto caller = Caller(ctx, "BrowseService.Catalogue");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  bool built_now = false;
  auto c =
      browser_->Catalogue(*caller, req->ticket(), req->rebuild(), &built_now);
  if (!c.ok()) return ToGrpcStatus(c.status());
  *resp->mutable_catalogue() = *std::move(c);
  resp->set_built_now(built_now);
  return grpc::Status::OK;
}

}  // namespace cairn
