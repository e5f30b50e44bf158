// AgentControlHandler: the gRPC face of enrollment and of the agents'
// command streams (proto/cairn/v1/agent.proto). Thin: it authenticates,
// converts proto to the domain types of server/agent_session.h and calls
// EnrollmentService and JobEngine.
//
// Connect: the caller must present an agent certificate that the catalog
// still accepts (PeerAuthorizer; checked again on every message, so a
// revoked client is cut off). The first message must be Hello. Commands the
// JobEngine pushes go into the session's queue and a dedicated writer thread
// writes them, so a slow or stalled agent never blocks the engine; when the
// queue stays empty for `heartbeat_interval` the writer sends a Heartbeat
// (keeps NAT mappings alive). The stream ends when the agent closes it, the
// server closes the session (a newer stream of the same client, revocation,
// shutdown), a write fails, or a message is malformed (INVALID_ARGUMENT).
//
// Thread safety: thread-safe; gRPC calls it from many threads.
#ifndef CAIRN_SERVER_AGENT_CONTROL_SERVICE_H_
#define CAIRN_SERVER_AGENT_CONTROL_SERVICE_H_

#include <chrono>

#include "cairn/v1/agent.grpc.pb.h"
#include "server/agent_registry.h"
#include "server/catalog.h"
#include "server/client_profiles.h"
#include "server/enrollment_service.h"
#include "server/job_engine.h"
#include "server/peer_authorizer.h"

namespace cairn {

struct AgentControlOptions {
  std::chrono::milliseconds heartbeat_interval = std::chrono::seconds(10);
};

class AgentControlHandler final : public v1::AgentControl::Service {
 public:
  // Nothing is owned; everything must outlive the handler.
  AgentControlHandler(Catalog* catalog, EnrollmentService* enrollment,
                      JobEngine* engine, AgentRegistry* registry,
                      const PeerAuthorizer* authorizer,
                      ClientProfiles* profiles,
                      AgentControlOptions options = {});

  grpc::Status Enroll(grpc::ServerContext* context,
                      const v1::EnrollRequest* request,
                      v1::EnrollResponse* response) override;
  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ServerCommand, v1::AgentMessage>* stream)
      override;

 private:
  Catalog* const catalog_;
  EnrollmentService* const enrollment_;
  JobEngine* const engine_;
  AgentRegistry* const registry_;
  const PeerAuthorizer* const authorizer_;
  ClientProfiles* const profiles_;
  const AgentControlOptions options_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_AGENT_CONTROL_SERVICE_H_
