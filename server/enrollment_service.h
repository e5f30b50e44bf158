// EnrollmentService: one-time tokens in, certificates out (DESIGN.md
// section 8). An administrator creates a token for a role (agent or media);
// a machine presents it once with a CSR for its own key and the identity it
// asks for, and gets a certificate from the internal CA bound to that
// identity and role.
//
// Enroll is all-or-nothing: the CSR is signed first (nothing stored), then
// the catalog consumes the token and creates the client or media agent with
// the certificate's fingerprint in one batch. Any refusal - bad token (unknown,
// used, expired, other role: PermissionDenied), malformed request
// (InvalidArgument), identity taken (AlreadyExists) - leaves the token unused
// and the catalog unchanged.
//
// Thread safety: thread-safe.
#ifndef CAIRN_SERVER_ENROLLMENT_SERVICE_H_
#define CAIRN_SERVER_ENROLLMENT_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "server/catalog.h"
#include "server/certificate_authority.h"

namespace cairn {

// Token lifetimes Admin.CreateToken accepts.
inline constexpr std::chrono::seconds kMinTokenTtl{1};
inline constexpr std::chrono::seconds kMaxTokenTtl = std::chrono::hours(24 * 7);
// Request size limits (a P-256 CSR is well under 1 KiB).
inline constexpr size_t kMaxTokenBytes = 256;
inline constexpr size_t kMaxCsrBytes = 16 << 10;

struct EnrollmentRequest {
  std::string token;
  std::string hostname;  // the identity asked for (IsValidIdentity)
  std::string csr_pem;
  Role role = Role::kAgent;  // kAgent or kMedia; must match the token
  std::string address;       // media agents: host:port agents dial
};

struct EnrollmentResult {
  std::string identity;
  std::string certificate_pem;
  std::string ca_certificate_pem;
  // Media agents: the certificate that verifies session tickets.
  std::string ticket_signer_pem;
};

struct CreatedToken {
  IssuedToken issued;
  std::string ca_fingerprint;
};

class EnrollmentService {
 public:
  // Neither is owned; both must outlive the service.
  // `ticket_signer_pem`: the certificate whose key signs session tickets
  // (the server's), handed to media agents when they enroll.
  EnrollmentService(Catalog* catalog, const CertificateAuthority* ca,
                    std::string ticket_signer_pem = "")
      : catalog_(catalog),
        ca_(ca),
        ticket_signer_pem_(std::move(ticket_signer_pem)) {}

  // A one-time token for `role` (kAgent or kMedia) valid for `ttl`
  // (kMinTokenTtl..kMaxTokenTtl). InvalidArgument otherwise.
  StatusOr<CreatedToken> CreateToken(Role role, std::chrono::seconds ttl,
                                     std::string_view created_by,
                                     const AuditEntry* audit = nullptr);

  StatusOr<EnrollmentResult> Enroll(const EnrollmentRequest& request);

 private:
  Catalog* const catalog_;
  const CertificateAuthority* const ca_;
  const std::string ticket_signer_pem_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_ENROLLMENT_SERVICE_H_
