// CertificateAuthority: cairn-server's internal CA (DESIGN.md section 8).
//
// It issues the server's TLS certificate and, at enrollment, the client
// certificates that identify every agent, media agent and administrator.
// Keys are ECDSA P-256 and signatures ECDSA-SHA256, through OpenSSL 3's
// EVP/X509 APIs.
//
// On disk, in the CA directory (mode 0700 when created here):
//   ca.key   the CA private key, PKCS#8 PEM, mode 0600, unencrypted
//   ca.crt   the CA certificate, PEM
// Both are written atomically, the key first; ca.crt is the commit record,
// so a directory without it holds no CA (a crash during Create leaves at
// most a stray ca.key, which the next Create replaces).
//
// What the CA puts in certificates (read back by common/peer_identity.h):
//   CA:      CN=<common_name>, O=Cairn; 10 years; basicConstraints
//            critical CA:TRUE, pathlen 0; keyUsage critical keyCertSign,
//            cRLSign.
//   server:  CN=<first name>, O=Cairn; SANs DNS:localhost, IP:127.0.0.1,
//            IP:::1 plus the names given; EKU serverAuth.
//   client:  CN=<identity> (if at most 64 characters), O=Cairn;
//            SAN URI:cairn://role/<role>/<identity>;
//            EKU clientAuth (and serverAuth plus DNS/IP SANs when
//            IssueOptions names them, for media agents that also serve).
//   All leaves: basicConstraints critical CA:FALSE, keyUsage critical
//   digitalSignature, subject and authority key identifiers, a random
//   positive 16-byte serial (126 random bits).
// Subjects and extensions come from the CA alone: a CSR contributes only its
// public key.
//
// Thread safety: a CertificateAuthority is immutable after Create/Load; every
// method is const and thread-safe.
#ifndef CAIRN_SERVER_CERTIFICATE_AUTHORITY_H_
#define CAIRN_SERVER_CERTIFICATE_AUTHORITY_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/peer_identity.h"
#include "common/status.h"

namespace cairn {

inline constexpr std::chrono::seconds kCaCertificateLifetime =
    std::chrono::hours(24 * 3653);  // 10 years
inline constexpr std::chrono::seconds kDefaultCertificateTtl =
    std::chrono::hours(24 * 365);  // 1 year

struct IssueOptions {
  // Validity from now (backdated 5 minutes for clock skew).
  std::chrono::seconds ttl = kDefaultCertificateTtl;
  // Explicit validity window; each overrides the ttl-derived bound when set
  // (renewal, and tests that need an expired or not-yet-valid certificate).
  std::optional<std::chrono::system_clock::time_point> not_before;
  std::optional<std::chrono::system_clock::time_point> not_after;
  // SignCsr only: DNS names / IP addresses under which the holder also
  // serves TLS (a media agent). When either is non-empty the certificate
  // gets these SANs and the serverAuth EKU as well.
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
};

// A freshly issued key pair and certificate.
struct IssuedCertificate {
  std::string key_pem;   // PKCS#8 private key; store with mode 0600
  std::string cert_pem;  // the leaf certificate only (not the CA)
};

class CertificateAuthority {
 public:
  static constexpr char kKeyFile[] = "ca.key";
  static constexpr char kCertFile[] = "ca.crt";

  // Creates a new CA in `dir` (created if missing). AlreadyExists if `dir`
  // already holds a CA certificate; InvalidArgument if `common_name` is
  // empty or longer than 64 characters.
  static StatusOr<std::unique_ptr<CertificateAuthority>> Create(
      const std::string& dir, std::string_view common_name);

  // Loads the CA in `dir`. NotFound if there is none; FailedPrecondition if
  // ca.key is accessible by group or others; DataLoss if the files do not
  // parse, the key does not match the certificate, or the certificate is
  // not a CA.
  static StatusOr<std::unique_ptr<CertificateAuthority>> Load(
      const std::string& dir);

  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;
  ~CertificateAuthority();

  // SHA-256 of the DER CA certificate, 64 lower-case hex digits: the value
  // users pass as --ca-fingerprint.
  const std::string& Fingerprint() const { return fingerprint_; }
  // The CA certificate (PEM): the trust anchor every endpoint pins.
  const std::string& CertificatePem() const { return cert_pem_; }

  // A new P-256 key and a server certificate for it. `dns_names` and
  // `ip_addresses` are added to localhost, 127.0.0.1 and ::1.
  // InvalidArgument for a malformed name or address.
  StatusOr<IssuedCertificate> IssueServerCertificate(
      const std::vector<std::string>& dns_names,
      const std::vector<std::string>& ip_addresses,
      const IssueOptions& options = {}) const;

  // Signs `csr_pem` for `identity` with `role` and returns the certificate
  // (PEM). Only the CSR's public key is used. InvalidArgument if the CSR
  // does not parse, its self-signature does not verify, its key is not ECDSA
  // P-256 or P-384, `identity` is not valid (IsValidIdentity), `role` is
  // kSystem, or the validity window is empty.
  StatusOr<std::string> SignCsr(std::string_view csr_pem,
                                std::string_view identity, Role role,
                                const IssueOptions& options = {}) const;

 private:
  struct Keys;  // OpenSSL objects, hidden from includers
  CertificateAuthority(std::unique_ptr<Keys> keys, std::string cert_pem,
                       std::string fingerprint);

  std::unique_ptr<Keys> keys_;
  const std::string cert_pem_;
  const std::string fingerprint_;
  // Serializes signing with the shared CA key.
  mutable std::mutex sign_mu_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_CERTIFICATE_AUTHORITY_H_
