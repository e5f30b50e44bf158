#include "media_agent/media_enrollment.h"

#include <filesystem>

#include "common/enrollment_client.h"
#include "common/env.h"
#include "common/tls.h"

namespace cairn {

StatusOr<MediaConfig> EnrollMedia(const MediaEnrollOptions& o) {
  if (o.state_dir.empty()) {
    return absl::InvalidArgumentError("--state-dir is required");
  }
  CAIRN_RETURN_IF_ERROR(CheckNotEnrolled(
      o.state_dir, {kTlsCertFile, kTlsKeyFile, kMediaConfigFile}));
  EnrollmentClientOptions e;
  e.server = o.server;
  e.token = o.token;
  e.ca_fingerprint = o.ca_fingerprint;
  e.name = o.name.empty() ? DefaultIdentityName("media") : o.name;
  e.role = Role::kMedia;
  e.address = o.address;
  e.timeout = o.timeout;
  CAIRN_ASSIGN_OR_RETURN(Enrollment enrolled, EnrollWithServer(e));

  MediaConfig config;
  config.server = o.server;
  config.identity = enrolled.identity;
  config.address = o.address;
  config.listen = o.listen.empty() ? o.address : o.listen;
  config.store = o.store;
  Status s = WriteTlsFiles(o.state_dir, enrolled.files);
  if (s.ok()) {
    s = WritePrivateFileAtomically(JoinPath(o.state_dir, kTicketSignerFile),
                                   enrolled.ticket_signer_pem);
  }
  if (s.ok()) s = WriteMediaConfig(o.state_dir, config);
  if (!s.ok()) {
    std::error_code ec;
    for (const char* f : {kTlsCertFile, kTlsKeyFile, kTlsCaFile,
                          kTicketSignerFile, kMediaConfigFile}) {
      std::filesystem::remove(JoinPath(o.state_dir, f), ec);
    }
    return s;
  }
  return config;
}

}  // namespace cairn
