#include "agent/grpc_media_connector.h"

#include "agent/browse_source.h"
#include "agent/remote_media.h"
#include "common/strings.h"

namespace cairn {
namespace {

class RemoteMediaLink final : public MediaLink {
 public:
  RemoteMediaLink(std::shared_ptr<grpc::Channel> channel, std::string address,
                  std::string ticket, std::chrono::milliseconds deadline)
      : remote_(std::move(channel), std::move(address), std::move(ticket),
                deadline) {}
  ChunkSink* sink() override { return &remote_; }
  const ChunkSource* source() const override { return &remote_; }
  std::string commit_receipt() const override {
    return remote_.commit_receipt();
  }

 private:
  RemoteMedia remote_;
};

}  // namespace

GrpcMediaConnector::GrpcMediaConnector(
    TlsFiles tls, std::string default_address,
    std::chrono::milliseconds call_deadline,
    std::chrono::milliseconds connect_timeout)
    : tls_(std::move(tls)),
      default_address_(std::move(default_address)),
      call_deadline_(call_deadline),
      connect_timeout_(connect_timeout) {}

StatusOr<std::shared_ptr<grpc::Channel>> GrpcMediaConnector::ChannelFor(
    const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = channels_.find(address);
  if (it != channels_.end()) return it->second;
  if (creds_ == nullptr) {
    CAIRN_ASSIGN_OR_RETURN(creds_, MakeChannelCredentials(tls_));
  }
  auto channel =
      grpc::CreateCustomChannel(address, creds_, MediaChannelArguments());
  channels_.emplace(address, channel);
  return channel;
}

StatusOr<std::pair<std::shared_ptr<grpc::Channel>, std::string>>
GrpcMediaConnector::ReadyChannel(const MediaSessionSpec& spec) {
  const std::string& address =
      spec.address.empty() ? default_address_ : spec.address;
  if (address.empty()) {
    return absl::InvalidArgumentError(
        "the job names no media agent address and no default is configured");
  }
  if (spec.ticket.empty()) {
    return absl::InvalidArgumentError(
        "the job carries no media session ticket");
  }
  CAIRN_ASSIGN_OR_RETURN(auto channel, ChannelFor(address));
  // A channel in TRANSIENT_FAILURE only retries on its backoff schedule;
  // asking for the state with try_to_connect and waiting for it restarts
  // the attempt now.
  channel->GetState(/*try_to_connect=*/true);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 connect_timeout_)) {
    return absl::UnavailableError(
        StrCat("cannot reach media agent ", address, " within ",
               connect_timeout_.count() / 1000, " s"));
  }
  return std::make_pair(std::move(channel), address);
}

StatusOr<std::unique_ptr<MediaLink>> GrpcMediaConnector::Connect(
    const MediaSessionSpec& spec) {
  CAIRN_ASSIGN_OR_RETURN(auto ready, ReadyChannel(spec));
  return std::unique_ptr<MediaLink>(std::make_unique<RemoteMediaLink>(
      std::move(ready.first), ready.second, spec.ticket, call_deadline_));
}

StatusOr<std::unique_ptr<BackupFileSource>> GrpcMediaConnector::ConnectFiles(
    const MediaSessionSpec& spec, std::optional<uint32_t> partition) {
  CAIRN_ASSIGN_OR_RETURN(auto ready, ReadyChannel(spec));
  return std::unique_ptr<BackupFileSource>(
      std::make_unique<BrowseSource>(std::move(ready.first), ready.second,
                                     spec.ticket, partition, call_deadline_));
}

}  // namespace cairn
