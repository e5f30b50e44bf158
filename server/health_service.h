// HealthHandler: cairn.v1.Health for cairn-server - liveness and "who am I"
// for any authenticated role the catalog still accepts.
//
// Thread safety: thread-safe.
#ifndef CAIRN_SERVER_HEALTH_SERVICE_H_
#define CAIRN_SERVER_HEALTH_SERVICE_H_

#include "cairn/v1/health.grpc.pb.h"
#include "server/peer_authorizer.h"

namespace cairn {

class HealthHandler final : public v1::Health::Service {
 public:
  // `authorizer` is not owned and must outlive the handler.
  explicit HealthHandler(const PeerAuthorizer* authorizer)
      : authorizer_(authorizer) {}

  grpc::Status Check(grpc::ServerContext* ctx,
                     const v1::HealthCheckRequest* req,
                     v1::HealthCheckResponse* resp) override;

 private:
  const PeerAuthorizer* const authorizer_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_HEALTH_SERVICE_H_
