// GrpcMediaConnector: MediaConnector over gRPC with mutual TLS, using the
// agent's own certificate (from enrollment) for every media agent it is
// sent to. Links are RemoteMedia (agent/remote_media.h) with the job's
// ticket, file sources BrowseSource (agent/browse_source.h); channels are
// kept per address and shared by jobs.
//
// Connect waits (up to `connect_timeout`) for the media agent's channel to
// be ready: a media agent that restarted is reached as soon as it is back,
// however far gRPC's reconnect backoff had got, and one that is down fails
// the job promptly with Unavailable instead of on its first data call.
//
// Thread safety: thread-safe.
#ifndef CAIRN_AGENT_GRPC_MEDIA_CONNECTOR_H_
#define CAIRN_AGENT_GRPC_MEDIA_CONNECTOR_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "agent/media_connector.h"
#include "common/tls.h"

namespace cairn {

class GrpcMediaConnector final : public MediaConnector {
 public:
  // `default_address` is dialled when a spec names no address (the media
  // agent embedded in the storage manager). `call_deadline` bounds every
  // data-path call.
  GrpcMediaConnector(
      TlsFiles tls, std::string default_address,
      std::chrono::milliseconds call_deadline = std::chrono::seconds(60),
      std::chrono::milliseconds connect_timeout = std::chrono::seconds(15));

  StatusOr<std::unique_ptr<MediaLink>> Connect(
      const MediaSessionSpec& spec) override;
  // A BrowseSource (agent/browse_source.h) with the spec's ticket; waits
  // for the channel as Connect does.
  StatusOr<std::unique_ptr<BackupFileSource>> ConnectFiles(
      const MediaSessionSpec& spec, std::optional<uint32_t> partition) override;

 private:
  // The ready channel for `spec` and the address it dials.
  StatusOr<std::pair<std::shared_ptr<grpc::Channel>, std::string>> ReadyChannel(
      const MediaSessionSpec& spec);
  StatusOr<std::shared_ptr<grpc::Channel>> ChannelFor(
      const std::string& address);

  const TlsFiles tls_;
  const std::string default_address_;
  const std::chrono::milliseconds call_deadline_;
  const std::chrono::milliseconds connect_timeout_;
  std::mutex mu_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;  // guarded by mu_
  std::map<std::string, std::shared_ptr<grpc::Channel>>
      channels_;  // guarded by mu_
};

}  // namespace cairn

#endif  // CAIRN_AGENT_GRPC_MEDIA_CONNECTOR_H_
