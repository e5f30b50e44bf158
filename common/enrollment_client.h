// Enrollment, client side (DESIGN.md section 8): turns a one-time token and
// the CA fingerprint an administrator handed out into an identity for a
// client agent or a media agent. Shared by `cairn-agent enroll` and
// `cairn-media enroll`, which add their own configuration file.
//
//   1. Pin the CA: the certificate the server presents must match the
//      fingerprint (FetchAndPinCaCertificate).
//   2. Create a fresh P-256 key and CSR on this machine; the key never
//      leaves it.
//   3. Call AgentControl.Enroll over TLS that trusts only the pinned CA
//      (no client certificate yet), with the role, the requested name and
//      (media agents) the address agents will dial.
//   4. Check the answer: the CA it names is the pinned one; the certificate
//      is for this key, the requested role and the identity the server
//      chose; a media agent gets the ticket signer's certificate, which
//      must verify against the CA.
// Nothing is written here: the caller writes the result (WriteTlsFiles).
//
// Thread safety: reentrant.
#ifndef CAIRN_COMMON_ENROLLMENT_CLIENT_H_
#define CAIRN_COMMON_ENROLLMENT_CLIENT_H_

#include <chrono>
#include <initializer_list>
#include <string>

#include "common/role.h"
#include "common/status.h"
#include "common/tls.h"

namespace cairn {

struct EnrollmentClientOptions {
  std::string server;          // host:port of cairn-server
  std::string token;           // from `cairnctl token create --role ROLE`
  std::string ca_fingerprint;  // from `cairn-server init`
  std::string name;            // requested identity (IsValidIdentity)
  Role role = Role::kAgent;    // kAgent or kMedia
  std::string address;         // kMedia: host:port agents dial; else empty
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

struct Enrollment {
  std::string identity;           // as the server certified it
  TlsFiles files;                 // pinned CA, certificate, private key
  std::string ticket_signer_pem;  // kMedia: verifies session tickets
};

// Errors:
//   PermissionDenied    CA fingerprint mismatch, or the server refused the
//                       token (unknown, used, expired, wrong role);
//   Unavailable / DeadlineExceeded  the server cannot be reached;
//   InvalidArgument     malformed options.
StatusOr<Enrollment> EnrollWithServer(const EnrollmentClientOptions& options);

// AlreadyExists naming the first of `files` present in `dir` ("remove the
// directory to enroll again"); OK if none is.
Status CheckNotEnrolled(const std::string& dir,
                        std::initializer_list<const char*> files);

// This machine's host name, reduced to the characters an identity allows
// (IsValidIdentity); `fallback` if nothing usable remains.
std::string DefaultIdentityName(const std::string& fallback);

}  // namespace cairn

#endif  // CAIRN_COMMON_ENROLLMENT_CLIENT_H_
