// Enrollment, agent side (DESIGN.md section 8): turns a one-time token and
// the CA fingerprint an administrator handed out into the agent's identity.
//
//   1. Pin the CA: the certificate the server presents must match the
//      fingerprint (FetchAndPinCaCertificate).
//   2. Create a fresh P-256 key and CSR on this machine; the key never
//      leaves it.
//   3. Call AgentControl.Enroll over TLS that trusts only the pinned CA
//      (no client certificate yet), with role agent and the hostname.
//   4. Check the answer (the CA it names is the pinned one; the certificate
//      is for this key, role agent, and the identity the server chose), then
//      write STATE_DIR/{ca.pem,cert.pem,key.pem} (key 0600) and
//      STATE_DIR/agent.yaml.
// Nothing is written unless every step before 4 succeeded; if writing
// fails, the files already written are removed.
//
// Thread safety: reentrant.
#ifndef CAIRN_AGENT_ENROLLMENT_H_
#define CAIRN_AGENT_ENROLLMENT_H_

#include <chrono>
#include <string>

#include "agent/agent_config.h"
#include "common/status.h"

namespace cairn {

struct EnrollOptions {
  std::string server;          // host:port of cairn-server
  std::string token;           // from `cairnctl token create --role agent`
  std::string ca_fingerprint;  // from `cairn-server init`
  std::string name;            // requested identity; empty: gethostname()
  std::string state_dir;       // where the identity is written
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

// On success returns the written configuration (identity as the server
// assigned it). Errors:
//   AlreadyExists       the state directory already holds an enrollment;
//   PermissionDenied    CA fingerprint mismatch, or the server refused the
//                       token (unknown, used, expired, wrong role);
//   Unavailable / DeadlineExceeded  the server cannot be reached;
//   InvalidArgument     malformed options.
StatusOr<AgentConfig> EnrollAgent(const EnrollOptions& options);

// This machine's host name, reduced to the characters an identity allows
// (IsValidIdentity); "agent" if nothing usable remains.
std::string DefaultAgentName();

}  // namespace cairn

#endif  // CAIRN_AGENT_ENROLLMENT_H_
