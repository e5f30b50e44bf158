#include "agent/enrollment.h"

#include <filesystem>

#include "common/enrollment_client.h"
#include "common/env.h"
#include "common/tls.h"

namespace cairn {

std::string DefaultAgentName() { return DefaultIdentityName("agent"); }

StatusOr<AgentConfig> EnrollAgent(const EnrollOptions& o) {
  if (o.state_dir.empty()) {
    return absl::InvalidArgumentError("--state-dir is required");
  }
  CAIRN_RETURN_IF_ERROR(CheckNotEnrolled(
      o.state_dir, {kTlsCertFile, kTlsKeyFile, kAgentConfigFile}));
  EnrollmentClientOptions e;
  e.server = o.server;
  e.token = o.token;
  e.ca_fingerprint = o.ca_fingerprint;
  e.name = o.name.empty() ? DefaultAgentName() : o.name;
  e.role = Role::kAgent;
  e.timeout = o.timeout;
  CAIRN_ASSIGN_OR_RETURN(Enrollment enrolled, EnrollWithServer(e));

  AgentConfig config;
  config.server = o.server;
  config.identity = enrolled.identity;
  config.hostname = e.name;
  Status s = WriteTlsFiles(o.state_dir, enrolled.files);
  if (s.ok()) s = WriteAgentConfig(o.state_dir, config);
  if (!s.ok()) {
    std::error_code ec;
    for (const char* f :
         {kTlsCertFile, kTlsKeyFile, kTlsCaFile, kAgentConfigFile}) {
      std::filesystem::remove(JoinPath(o.state_dir, f), ec);
    }
    return s;
  }
  return config;
}

}  // namespace cairn
