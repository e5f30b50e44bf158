// Enrollment of a separate media agent (`cairn-media enroll`): the shared
// client half (common/enrollment_client.h) with role media and the address
// agents will dial, then the state directory: ca.pem, cert.pem, key.pem
// (0600), server.pem (the ticket signer) and media.yaml
// (media_agent/media_config.h). Nothing is written unless enrollment
// succeeded; if writing fails, the files already written are removed.
//
// Thread safety: reentrant.
#ifndef CAIRN_MEDIA_AGENT_MEDIA_ENROLLMENT_H_
#define CAIRN_MEDIA_AGENT_MEDIA_ENROLLMENT_H_

#include <chrono>
#include <string>

#include "common/status.h"
#include "media_agent/media_config.h"

namespace cairn {

struct MediaEnrollOptions {
  std::string server;          // host:port of cairn-server
  std::string token;           // from `cairnctl token create --role media`
  std::string ca_fingerprint;  // from `cairn-server init`
  std::string name;            // media agent id; empty: the host name
  std::string address;         // host:port agents dial (certified)
  std::string listen;          // empty: address
  std::string store;           // chunk store to record in media.yaml
  std::string state_dir;
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

// Errors as EnrollWithServer, plus AlreadyExists if the state directory
// already holds an enrollment.
StatusOr<MediaConfig> EnrollMedia(const MediaEnrollOptions& options);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_MEDIA_ENROLLMENT_H_
