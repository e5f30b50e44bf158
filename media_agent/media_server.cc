#include "media_agent/media_server.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "common/env.h"
#include "common/strings.h"
#include "common/tls.h"
#include "media_agent/browse_service.h"
#include "media_agent/browser.h"
#include "media_agent/data_path.h"
#include "media_agent/media_service.h"
#include "media_agent/repository.h"

namespace cairn {

MediaServer::MediaServer() = default;

MediaServer::~MediaServer() { Shutdown().IgnoreError(); }

StatusOr<std::unique_ptr<MediaServer>> MediaServer::Start(
    const MediaServerOptions& options) {
  if (options.state_dir.empty()) {
    return absl::InvalidArgumentError("--state-dir is required");
  }
  CAIRN_ASSIGN_OR_RETURN(MediaConfig config,
                         LoadMediaConfig(options.state_dir));
  if (!options.store.empty()) config.store = options.store;
  if (!options.listen.empty()) config.listen = options.listen;
  if (config.store.empty()) {
    return absl::InvalidArgumentError(
        "no chunk store: pass --store or set store in media.yaml");
  }
  CAIRN_ASSIGN_OR_RETURN(TlsFiles tls, ReadTlsFiles(options.state_dir));
  std::string signer;
  CAIRN_RETURN_IF_ERROR(Env::Default()->ReadFileToString(
      JoinPath(options.state_dir, kTicketSignerFile), &signer));
  Status signer_ok = VerifyCertificateAgainstCa(signer, tls.ca_pem);
  if (!signer_ok.ok()) {
    return absl::FailedPreconditionError(
        StrCat(kTicketSignerFile, ": ", ToStd(signer_ok.message())));
  }
  CAIRN_ASSIGN_OR_RETURN(auto credentials, MakeServerCredentials(tls));

  std::unique_ptr<MediaServer> m(new MediaServer());
  m->config_ = config;
  m->shutdown_grace_ = options.shutdown_grace;
  RepositoryOptions ropts;
  ropts.create_if_missing = true;
  CAIRN_ASSIGN_OR_RETURN(m->repository_, Repository::Open(config.store, ropts));
  m->data_path_ = std::make_unique<DataPath>(
      m->repository_.get(), config.identity, signer, nullptr, tls.key_pem);
  const std::string& signer_pem = signer;
  m->service_ = std::make_unique<MediaServiceHandler>(m->data_path_.get());
  if (options.browse) {
    BrowserOptions bo;
    bo.repo_root = config.store;
    bo.media_id = config.identity;
    bo.server_cert_pem = signer_pem;
    bo.media_key_pem = tls.key_pem;
    bo.runtime_dir = JoinPath(options.state_dir, "browse");
    bo.idle_timeout = options.browse_idle_timeout;
    bo.catalogue_after_backup = options.catalogue_after_backup;
    bo.sandbox = options.browse_sandbox;
    auto browser = Browser::Create(std::move(bo));
    if (browser.ok()) {
      m->browser_ = *std::move(browser);
      m->browse_service_ =
          std::make_unique<BrowseServiceHandler>(m->browser_.get());
      Browser* b = m->browser_.get();
      m->data_path_->SetCommitListener(
          [b](const SessionTicket& t) { b->OnBackupCommitted(t); });
    } else {
      spdlog::warn("browse is disabled on this media agent: {}",
                   ToStd(browser.status().message()));
    }
  }

  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, credentials, &m->port_);
  builder.SetMaxReceiveMessageSize(kMediaMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMediaMaxMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.RegisterService(m->service_.get());
  if (m->browse_service_) builder.RegisterService(m->browse_service_.get());
  m->server_ = builder.BuildAndStart();
  if (m->server_ == nullptr || m->port_ == 0) {
    m->server_.reset();
    return absl::UnavailableError(
        StrCat("cannot listen on ", config.listen,
               " (address in use, or not an address of this host)"));
  }
  spdlog::info("cairn-media '{}' serving store {} on {} (port {})",
               config.identity, config.store, config.listen, m->port_);
  return m;
}

Status MediaServer::Shutdown() {
  if (shut_down_) return Status();
  shut_down_ = true;
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + shutdown_grace_);
    server_->Wait();
  }
  if (data_path_) data_path_->SetCommitListener(nullptr);
  if (browser_) browser_->Shutdown();
  browse_service_.reset();
  browser_.reset();
  service_.reset();
  data_path_.reset();
  repository_.reset();
  spdlog::info("cairn-media stopped");
  return Status();
}

}  // namespace cairn
