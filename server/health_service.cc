#include "server/health_service.h"

#include "common/peer_identity.h"

namespace cairn {

grpc::Status HealthHandler::Check(grpc::ServerContext* ctx,
                                  const v1::HealthCheckRequest*,
                                  v1::HealthCheckResponse* resp) {
  auto peer = AuthorizePeer(*ctx,
                            {Role::kAdmin, Role::kOperator, Role::kHelpdesk,
                             Role::kAuditor, Role::kAgent, Role::kMedia},
                            "cairn.v1.Health/Check");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  if (Status s = authorizer_->CheckActive(*peer); !s.ok()) {
    return ToGrpcStatus(s);
  }
  resp->set_status(v1::HealthCheckResponse::SERVING);
  resp->set_peer_identity(peer->identity);
  resp->set_peer_role(std::string(RoleName(peer->role)));
  return grpc::Status::OK;
}

}  // namespace cairn
