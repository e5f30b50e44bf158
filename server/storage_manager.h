// StorageManager: a running cairn-server - the catalog, CA, agent registry,
// job engine, and one gRPC server (TLS 1.3 from DIR/tls) serving
// AgentControl, Admin, Health and, with `embedded_media`, the MediaService of
// an in-process media agent (media id "embedded") over a repository at
// `store`. `cairn-server run` is this plus signal handling; tests start it on
// port 0.
//
// Message size limits (common/message_limits.h): without an embedded media
// agent the port accepts kControlMaxMessageBytes (4 MiB); with one it must
// accept kMediaMaxMessageBytes (17 MiB) for chunks, and the AgentControl
// and Admin handlers refuse any request above 4 MiB themselves.
//
// Shutdown (graceful, idempotent, also from the destructor): stop dispatching
// jobs and close every agent stream, end WatchJob streams, stop the gRPC
// server (in-flight calls get `shutdown_grace`, then are cancelled), close the
// catalog. Jobs still running are failed by the catalog on the next start.
//
// Thread safety: Start/Shutdown from one thread; the accessors are for tests.
#ifndef CAIRN_SERVER_STORAGE_MANAGER_H_
#define CAIRN_SERVER_STORAGE_MANAGER_H_

#include <chrono>
#include <memory>
#include <string>

#include "common/message_limits.h"
#include "common/status.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace cairn {

class AdminHandler;
class AgentControlHandler;
class AgentRegistry;
class BrowseServiceHandler;
class BootTemplates;
class Browser;
class Catalog;
class CertificateAuthority;
class DataPath;
class EnrollmentService;
class ClientProfiles;
class HealthHandler;
class ImageExports;
class JobEngine;
class JobEvents;
class MediaServiceHandler;
class PeerAuthorizer;
class Repository;
class RestoreBuilds;

inline constexpr int kServerMaxMessageBytes = kMediaMaxMessageBytes;

struct StorageManagerOptions {
  std::string dir;                        // made by `cairn-server init`
  std::string listen = "127.0.0.1:7443";  // host:port; port 0 picks one
  bool embedded_media = false;
  std::string
      store;  // embedded media: repository directory (created if missing)
  // Embedded media: the address agents dial for the data path. Empty: the
  // address they dial for the server (sent as an empty MediaSession.address).
  std::string media_address;
  std::chrono::seconds shutdown_grace{10};
  std::chrono::milliseconds heartbeat_interval = std::chrono::seconds(10);
  // How long a running job waits for its agent to reconnect (JobEngine).
  std::chrono::milliseconds reconnect_grace = std::chrono::seconds(60);
  uint32_t chunk_size = 4u << 20;
  int zstd_level = 1;
  // Embedded media: serve BrowseService and record file catalogues after
  // backups (media_agent/browser.h); mount sessions under DIR/browse.
  bool browse = true;
  bool catalogue_after_backup = true;
  // Browse inside a libguestfs appliance instead of mounting on this host.
  bool browse_sandbox = false;
  std::chrono::seconds browse_idle_timeout{300};
};

class StorageManager {
 public:
  // Loads DIR (server/server_home.h), opens the catalog (failing jobs a
  // previous server left running), opens the embedded repository, and
  // starts serving. Unavailable if the address cannot be bound.
  static StatusOr<std::unique_ptr<StorageManager>> Start(
      const StorageManagerOptions& options);
  ~StorageManager();
  StorageManager(const StorageManager&) = delete;
  StorageManager& operator=(const StorageManager&) = delete;

  // The port actually bound.
  int port() const { return port_; }
  // Graceful shutdown (see above); returns the catalog's Close status.
  Status Shutdown();

  Catalog* catalog() { return catalog_.get(); }
  JobEngine* engine() { return engine_.get(); }
  AgentRegistry* registry() { return registry_.get(); }
  Repository* repository() { return repository_.get(); }
  // Null without embedded media, or when browse is disabled.
  Browser* browser() { return browser_.get(); }
  const CertificateAuthority& ca() const { return *ca_; }

 private:
  StorageManager();

  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<CertificateAuthority> ca_;
  std::unique_ptr<AgentRegistry> registry_;
  std::unique_ptr<JobEvents> events_;
  std::unique_ptr<JobEngine> engine_;
  std::unique_ptr<PeerAuthorizer> authorizer_;
  std::unique_ptr<EnrollmentService> enrollment_;
  std::unique_ptr<Repository> repository_;
  std::unique_ptr<DataPath> data_path_;
  std::unique_ptr<ClientProfiles> profiles_;
  std::unique_ptr<RestoreBuilds> builds_;
  std::unique_ptr<BootTemplates> templates_;
  std::unique_ptr<ImageExports> exports_;
  std::unique_ptr<AgentControlHandler> agent_control_;
  std::unique_ptr<AdminHandler> admin_;
  std::unique_ptr<HealthHandler> health_;
  std::unique_ptr<MediaServiceHandler> media_;
  std::unique_ptr<Browser> browser_;
  std::unique_ptr<BrowseServiceHandler> browse_;
  std::unique_ptr<grpc::Server> server_;
  std::chrono::seconds shutdown_grace_{10};
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_STORAGE_MANAGER_H_
