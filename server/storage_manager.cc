#include "server/storage_manager.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/env.h"
#include "common/strings.h"
#include "common/tls.h"
#include "media_agent/browse_service.h"
#include "media_agent/browser.h"
#include "media_agent/data_path.h"
#include "media_agent/repository.h"
#include "server/admin_service.h"
#include "server/agent_control_service.h"
#include "server/agent_registry.h"
#include "server/boot_templates.h"
#include "server/catalog.h"
#include "server/certificate_authority.h"
#include "server/client_profiles.h"
#include "server/embedded_media_service.h"
#include "server/enrollment_service.h"
#include "server/health_service.h"
#include "server/image_exports.h"
#include "server/job_engine.h"
#include "server/job_events.h"
#include "server/peer_authorizer.h"
#include "server/restore_builds.h"
#include "server/server_home.h"

namespace cairn {

StorageManager::StorageManager() = default;

StorageManager::~StorageManager() { Shutdown().IgnoreError(); }

StatusOr<std::unique_ptr<StorageManager>> StorageManager::Start(
    const StorageManagerOptions& options) {
  if (options.embedded_media && options.store.empty()) {
    return absl::InvalidArgumentError("--embedded-media needs --store");
  }
  CAIRN_ASSIGN_OR_RETURN(LoadedServerHome home, LoadServerHome(options.dir));
  std::unique_ptr<StorageManager> m(new StorageManager());
  m->shutdown_grace_ = options.shutdown_grace;
  m->ca_ = std::move(home.ca);
  CAIRN_ASSIGN_OR_RETURN(m->catalog_, Catalog::Open(home.paths.catalog));
  CAIRN_ASSIGN_OR_RETURN(auto credentials, MakeServerCredentials(home.tls));

  JobEngineOptions engine_options;
  engine_options.ticket_key_pem = home.tls.key_pem;
  engine_options.data_key = home.data_key;
  engine_options.chunk_size = options.chunk_size;
  engine_options.zstd_level = options.zstd_level;
  engine_options.reconnect_grace = options.reconnect_grace;
  if (options.embedded_media) {
    RepositoryOptions ropts;
    ropts.create_if_missing = true;
    CAIRN_ASSIGN_OR_RETURN(m->repository_,
                           Repository::Open(options.store, ropts));
    m->data_path_ = std::make_unique<DataPath>(
        m->repository_.get(), kEmbeddedMediaId, home.tls.cert_pem);
    CAIRN_ASSIGN_OR_RETURN(std::string server_fp,
                           CertificateFingerprint(home.tls.cert_pem));
    MediaAgent embedded;
    embedded.media_agent_id = kEmbeddedMediaId;
    embedded.address = options.media_address;
    embedded.cert_fingerprint = server_fp;
    CAIRN_RETURN_IF_ERROR(m->catalog_->PutMediaAgent(embedded));
    engine_options.embedded_media = true;
    engine_options.embedded_media_address = options.media_address;
    engine_options.embedded_media_cert_pem = home.tls.cert_pem;
    Repository* repo = m->repository_.get();
    engine_options.committed_check = [repo](const std::string& media_id,
                                            const std::string& backup_id) {
      if (media_id != kEmbeddedMediaId) return Status();
      CAIRN_ASSIGN_OR_RETURN(bool exists, repo->manifests().Exists(backup_id));
      if (!exists) {
        return absl::FailedPreconditionError(
            StrCat("the embedded media agent holds no manifest for backup '",
                   backup_id, "'"));
      }
      return Status();
    };
  }

  m->registry_ = std::make_unique<AgentRegistry>();
  m->events_ = std::make_unique<JobEvents>();
  StorageManager* self = m.get();
  engine_options.cancel_server_job = [self](uint64_t job_id) {
    if (self->builds_) self->builds_->CancelRunning(job_id);
  };
  m->engine_ =
      std::make_unique<JobEngine>(m->catalog_.get(), m->registry_.get(),
                                  m->events_.get(), std::move(engine_options));
  m->authorizer_ = std::make_unique<PeerAuthorizer>(m->catalog_.get());
  if (m->data_path_) {
    m->media_ =
        MakeEmbeddedMediaService(m->data_path_.get(), m->authorizer_.get());
    if (options.browse) {
      BrowserOptions bo;
      bo.repo_root = options.store;
      bo.media_id = kEmbeddedMediaId;
      bo.server_cert_pem = home.tls.cert_pem;
      bo.media_key_pem = home.tls.key_pem;
      bo.runtime_dir = JoinPath(options.dir, "browse");
      bo.idle_timeout = options.browse_idle_timeout;
      bo.catalogue_after_backup = options.catalogue_after_backup;
      bo.sandbox = options.browse_sandbox;
      auto browser = Browser::Create(std::move(bo));
      if (browser.ok()) {
        m->browser_ = *std::move(browser);
        const PeerAuthorizer* authorizer = m->authorizer_.get();
        m->browse_ = std::make_unique<BrowseServiceHandler>(
            m->browser_.get(), [authorizer](const PeerIdentity& peer) {
              return authorizer->CheckActive(peer);
            });
        Browser* b = m->browser_.get();
        m->data_path_->SetCommitListener(
            [b](const SessionTicket& t) { b->OnBackupCommitted(t); });
      } else {
        spdlog::warn("browse is disabled on the embedded media agent: {}",
                     ToStd(browser.status().message()));
      }
    }
  }
  m->enrollment_ = std::make_unique<EnrollmentService>(
      m->catalog_.get(), m->ca_.get(), home.tls.cert_pem);
  AgentControlOptions agent_options;
  agent_options.heartbeat_interval = options.heartbeat_interval;
  m->profiles_ = std::make_unique<ClientProfiles>(m->catalog_.get());
  RestoreBuildsOptions build_options;
  build_options.repository = m->repository_.get();
  build_options.data_key = home.data_key;
  build_options.work_dir = JoinPath(options.dir, "builds");
  if (std::error_code ec;
      !std::filesystem::create_directories(build_options.work_dir, ec) && ec) {
    return absl::UnavailableError(
        StrCat("cannot create ", build_options.work_dir, ": ", ec.message()));
  }
  m->builds_ = std::make_unique<RestoreBuilds>(
      m->catalog_.get(), m->profiles_.get(), m->events_.get(),
      std::move(build_options));
  m->templates_ =
      std::make_unique<BootTemplates>(m->catalog_.get(), m->profiles_.get());
  m->exports_ = std::make_unique<ImageExports>(
      m->catalog_.get(), m->repository_.get(), home.data_key,
      JoinPath(options.dir, "builds"));
  m->agent_control_ = std::make_unique<AgentControlHandler>(
      m->catalog_.get(), m->enrollment_.get(), m->engine_.get(),
      m->registry_.get(), m->authorizer_.get(), m->profiles_.get(),
      agent_options);
  m->admin_ = std::make_unique<AdminHandler>(
      m->catalog_.get(), m->enrollment_.get(), m->engine_.get(),
      m->registry_.get(), m->events_.get(), m->authorizer_.get(),
      m->profiles_.get(), m->builds_.get(), m->templates_.get(),
      m->exports_.get());
  m->health_ = std::make_unique<HealthHandler>(m->authorizer_.get());

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, credentials, &m->port_);
  const int limit =
      options.embedded_media ? kMediaMaxMessageBytes : kControlMaxMessageBytes;
  builder.SetMaxReceiveMessageSize(limit);
  builder.SetMaxSendMessageSize(limit);
  // Dead agents are noticed even if their TCP connection lingers.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.RegisterService(m->agent_control_.get());
  builder.RegisterService(m->admin_.get());
  builder.RegisterService(m->health_.get());
  if (m->media_) builder.RegisterService(m->media_.get());
  if (m->browse_) builder.RegisterService(m->browse_.get());
  m->server_ = builder.BuildAndStart();
  if (m->server_ == nullptr || m->port_ == 0) {
    m->server_.reset();
    return absl::UnavailableError(
        StrCat("cannot listen on ", options.listen,
               " (address in use, or not an address of this host)"));
  }
  spdlog::info("cairn-server listening on {} (port {}){}", options.listen,
               m->port_, options.embedded_media ? ", embedded media" : "");
  return m;
}

Status StorageManager::Shutdown() {
  if (shut_down_) return Status();
  shut_down_ = true;
  if (engine_) engine_->Shutdown();
  if (events_) events_->Shutdown();
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + shutdown_grace_);
    server_->Wait();
  }
  if (builds_) builds_->Shutdown();
  if (data_path_) data_path_->SetCommitListener(nullptr);
  if (browser_) browser_->Shutdown();
  Status s;
  if (catalog_) s = catalog_->Close();
  spdlog::info("cairn-server stopped");
  return s;
}

}  // namespace cairn
