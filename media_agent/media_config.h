// MediaConfig: a separate media agent's settings in its state directory,
// media.yaml, written by `cairn-media enroll` next to its TLS files (ca.pem,
// cert.pem, key.pem; common/tls.h) and the ticket signer's certificate
// (server.pem), and read by `cairn-media serve`.
//
//   server: "cairn.example.com:7443"  # the storage manager it enrolled with
//   identity: "media-1"                # media agent id the CA certified
//   address: "media-1.example.com:7444"  # what agents dial (in the cert)
//   listen: "0.0.0.0:7444"             # where to listen (default: address)
//   store: "/var/lib/cairn-media/store"  # chunk store (required to serve)
//
// Unknown keys are errors (typos do not pass silently).
//
// Thread safety: pure functions.
#ifndef CAIRN_MEDIA_AGENT_MEDIA_CONFIG_H_
#define CAIRN_MEDIA_AGENT_MEDIA_CONFIG_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn {

inline constexpr char kMediaConfigFile[] = "media.yaml";
// The certificate that verifies session tickets (the storage manager's).
inline constexpr char kTicketSignerFile[] = "server.pem";

struct MediaConfig {
  std::string server;
  std::string identity;
  std::string address;
  std::string listen;
  std::string store;
};

std::string EncodeMediaConfig(const MediaConfig& config);
// Parses media.yaml text; `name` names the file in errors. InvalidArgument
// naming key and line for a bad value, a missing required key (server,
// identity, address) or an unknown key. An empty listen becomes address.
StatusOr<MediaConfig> ParseMediaConfig(std::string_view text,
                                       std::string_view name);
// DIR/media.yaml. NotFound (saying to run `cairn-media enroll`) if absent.
StatusOr<MediaConfig> LoadMediaConfig(const std::string& state_dir);
// Writes DIR/media.yaml atomically (mode 0600).
Status WriteMediaConfig(const std::string& state_dir,
                        const MediaConfig& config);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_MEDIA_CONFIG_H_
