// cairn-server's YAML configuration file (--config; deploy/cairn-server.yaml
// is the annotated example). Every key is optional; command-line flags
// override the file. Unknown keys are errors naming file, key and line.
//
//   dir: /var/lib/cairn-server
//   listen: 0.0.0.0:7443
//   log_level: info
//   shutdown_grace_seconds: 10
//   heartbeat_seconds: 10
//   reconnect_grace_seconds: 60   # a running job outlives a dropped stream
//   backup:
//     chunk_size: 4MiB
//     zstd_level: 1
//   embedded_media:
//     enabled: true
//     store: /var/lib/cairn-server/store
//     address: ""            # empty: agents use the server's address
//     browse: true           # serve BrowseService (docs/browse.md)
//     catalogue_after_backup: true  # record each backup's file catalogue
//     browse_idle_seconds: 300      # unmount an unused backup after this
//     browse_sandbox: false  # browse inside a libguestfs appliance, no host
//     mount
//
// Thread safety: a pure function.
#ifndef CAIRN_SERVER_SERVER_CONFIG_H_
#define CAIRN_SERVER_SERVER_CONFIG_H_

#include <string>

#include "common/status.h"
#include "server/storage_manager.h"

namespace cairn {

struct ServerConfig {
  StorageManagerOptions run;
  std::string log_level = "info";
};

// Reads `path` over the values already in `*config`.
Status LoadServerConfig(const std::string& path, ServerConfig* config);

}  // namespace cairn

#endif  // CAIRN_SERVER_SERVER_CONFIG_H_
