// MediaServer: a separate media agent's network service (`cairn-media
// serve`, DESIGN.md section 2). It serves the MediaService data path
// (media_agent/media_service.h) over mutual TLS 1.3 with the identity
// `cairn-media enroll` wrote, on one chunk store, and signs a commit receipt
// for every committed backup with its certificate key.
//
// It never calls the storage manager: session tickets signed by the server
// (verified with server.pem) carry every permission, and commit receipts
// travel back through the client agent. Consequently a client revoked on
// the server keeps a ticket it already holds until the ticket expires
// (the server's ticket_ttl); it gets no new one.
//
// Thread safety: Start and Shutdown from one thread; the service itself is
// thread-safe.
#ifndef CAIRN_MEDIA_AGENT_MEDIA_SERVER_H_
#define CAIRN_MEDIA_AGENT_MEDIA_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "media_agent/media_config.h"

namespace grpc {
class Server;
}

namespace cairn {

class BrowseServiceHandler;
class Browser;
class DataPath;
class MediaServiceHandler;
class Repository;

struct MediaServerOptions {
  std::string state_dir;  // from `cairn-media enroll`
  std::string store;      // overrides media.yaml's store
  std::string listen;     // overrides media.yaml's listen
  std::chrono::seconds shutdown_grace{10};
  // Serve BrowseService (media_agent/browser.h) and record a file catalogue
  // after each backup; mount sessions live under <state_dir>/browse. If the
  // host cannot (no FUSE, not allowed to mount) browse is disabled with a
  // warning and the data path still runs.
  bool browse = true;
  bool catalogue_after_backup = true;
  bool browse_sandbox = false;  // Browser::sandbox (docs/browse.md)
  std::chrono::seconds browse_idle_timeout{300};
};

class MediaServer {
 public:
  // Loads the state directory, opens (creating if missing) the store, and
  // listens. NotFound if not enrolled; InvalidArgument if no store is
  // configured; FailedPrecondition if the TLS files or server.pem do not
  // verify against the CA; Unavailable if the address cannot be bound.
  static StatusOr<std::unique_ptr<MediaServer>> Start(
      const MediaServerOptions& options);
  ~MediaServer();

  int port() const { return port_; }
  const MediaConfig& config() const { return config_; }

  // Stops accepting calls, lets in-flight ones finish (up to the grace
  // period), then closes the store. Idempotent.
  Status Shutdown();

 private:
  MediaServer();

  MediaConfig config_;
  std::chrono::seconds shutdown_grace_{10};
  std::unique_ptr<Repository> repository_;
  std::unique_ptr<DataPath> data_path_;
  std::unique_ptr<MediaServiceHandler> service_;
  std::unique_ptr<Browser> browser_;
  std::unique_ptr<BrowseServiceHandler> browse_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_MEDIA_SERVER_H_
