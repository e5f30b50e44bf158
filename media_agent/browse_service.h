// BrowseServiceHandler: the gRPC face of the media agent's Browser
// (media_agent/browser.h; proto/cairn/v1/browse.proto). Thin: it identifies
// the caller by its client certificate (roles admin, operator, helpdesk or
// agent - the ticket then decides what it may read), converts proto to
// domain types, calls Browser, and converts the Status.
//
// Thread safety: thread-safe (Browser is).
#ifndef CAIRN_MEDIA_AGENT_BROWSE_SERVICE_H_
#define CAIRN_MEDIA_AGENT_BROWSE_SERVICE_H_

#include <functional>

#include "cairn/v1/browse.grpc.pb.h"
#include "common/peer_identity.h"
#include "media_agent/browser.h"

namespace cairn {

class BrowseServiceHandler final : public v1::BrowseService::Service {
 public:
  // As MediaServiceHandler::PeerCheck: extra authorization of the caller.
  using PeerCheck = std::function<Status(const PeerIdentity&)>;

  // `browser` is not owned and must outlive the handler.
  explicit BrowseServiceHandler(Browser* browser,
                                PeerCheck check_peer = nullptr)
      : browser_(browser), check_peer_(std::move(check_peer)) {}

  grpc::Status List(grpc::ServerContext* ctx, const v1::BrowseListRequest* req,
                    v1::BrowseListResponse* resp) override;
  grpc::Status Find(grpc::ServerContext* ctx, const v1::BrowseFindRequest* req,
                    v1::BrowseFindResponse* resp) override;
  grpc::Status Read(
      grpc::ServerContext* ctx, const v1::BrowseReadRequest* req,
      grpc::ServerWriter<v1::BrowseReadResponse>* writer) override;
  grpc::Status Catalogue(grpc::ServerContext* ctx,
                         const v1::BrowseCatalogueRequest* req,
                         v1::BrowseCatalogueResponse* resp) override;

 private:
  StatusOr<std::string> Caller(grpc::ServerContext* ctx,
                               std::string_view what) const;

  Browser* const browser_;
  const PeerCheck check_peer_;
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_BROWSE_SERVICE_H_
