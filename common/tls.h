// TLS for Cairn's gRPC connections: credentials, CA pinning and the client
// half of enrollment (DESIGN.md section 8).
//
// Every Cairn server (cairn-server, cairn-media) listens with
// MakeServerCredentials: TLS 1.3 only, its certificate chain is its leaf
// followed by the CA certificate, and it REQUESTS a client certificate and
// verifies it against the CA when one is presented
// (GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY), but does not REQUIRE one:
// enrollment, the RPC that issues a caller its first certificate, must be
// reachable without one. "Certificate required" is therefore enforced per RPC
// by common/peer_identity.h, which every handler except Enroll calls first.
// A certificate from another CA, or an expired one, fails the handshake.
//
// Enrollment, client side:
//   1. FetchAndPinCaCertificate(server, fingerprint): the CA certificate the
//      server presents, accepted only if its SHA-256 matches the fingerprint
//      the administrator handed out (`cairn-server init` prints it).
//   2. CreateKeyAndCsr(identity): a fresh P-256 key and a CSR.
//   3. Call Enroll over MakeEnrollmentChannelCredentials(ca_pem) (server
//      verified, no client certificate), get the certificate.
//   4. WriteTlsFiles; from then on every call uses MakeChannelCredentials:
//      mutual TLS 1.3.
//
// TLS 1.3: gRPC 1.51 (Debian 12) has a minimum-TLS-version setting but no
// public API for it (TlsCredentialsOptions::set_min_tls_version arrived in a
// later release). MakeServerCredentials sets it through the exported
// grpc_ssl_server_credentials::set_min_tls_version of libgrpc; see tls.cc.
// Servers refuse TLS 1.2 handshakes, so every connection is TLS 1.3
// whatever the client offers; the unit tests prove both directions.
//
// Thread safety: all functions are thread-safe.
#ifndef CAIRN_COMMON_TLS_H_
#define CAIRN_COMMON_TLS_H_

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace grpc {
class ChannelCredentials;
class ServerCredentials;
}  // namespace grpc

namespace cairn {

// The PEM material one endpoint needs.
struct TlsFiles {
  std::string ca_pem;    // the Cairn CA certificate (the trust anchor)
  std::string cert_pem;  // this endpoint's certificate (leaf first)
  std::string key_pem;   // its private key
};

// ---- Files -----------------------------------------------------------------

// TlsFiles in a directory as ca.pem, cert.pem and key.pem (key mode 0600).
// WriteTlsFiles writes the key and the CA first and cert.pem last, so a
// directory with cert.pem is complete. It creates `dir` (mode 0700) if
// missing.
inline constexpr char kTlsCaFile[] = "ca.pem";
inline constexpr char kTlsCertFile[] = "cert.pem";
inline constexpr char kTlsKeyFile[] = "key.pem";
StatusOr<TlsFiles> ReadTlsFiles(const std::string& dir);
Status WriteTlsFiles(const std::string& dir, const TlsFiles& files);

// ---- Fingerprints ----------------------------------------------------------

// SHA-256 of the DER encoding of the first certificate in `cert_pem`, as 64
// lower-case hex digits. This is what `--ca-fingerprint` takes.
// InvalidArgument if `cert_pem` holds no certificate.
StatusOr<std::string> CertificateFingerprint(std::string_view cert_pem);

// Accepts a fingerprint as people paste it: upper or lower case, with or
// without ':' or ' ' separators, optionally prefixed "sha256:" or
// "SHA256:". Returns 64 lower-case hex digits or InvalidArgument.
StatusOr<std::string> NormalizeFingerprint(std::string_view text);

// OK if the first certificate in `cert_pem` is currently valid and was
// issued by the CA in `ca_pem` (a server certificate, as cairn-server's is).
// InvalidArgument if either does not parse; FailedPrecondition with the
// verifier's reason otherwise.
Status VerifyCertificateAgainstCa(std::string_view cert_pem,
                                  std::string_view ca_pem);

// ---- gRPC credentials ------------------------------------------------------

// Server credentials: TLS 1.3 only; presents `files.cert_pem` followed by
// `files.ca_pem` (unless cert_pem already includes it); requests a client
// certificate and verifies it against `files.ca_pem` if presented (see the
// top of this file for why it is not required at the handshake).
// InvalidArgument if a PEM does not parse or the key does not match the
// certificate; FailedPrecondition if the certificate does not verify against
// the CA (expired, or from another CA).
// The returned credentials do not support SetAuthMetadataProcessor (Cairn
// authorizes in the handlers); calling it aborts.
StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

// Client credentials for mutual TLS: presents `files.cert_pem`, trusts only
// `files.ca_pem` (the pinned CA, never the system roots). The server's name
// is checked against its certificate's SANs. Errors as MakeServerCredentials.
StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files);

// Client credentials with no client certificate, trusting only `ca_pem`: for
// the Enroll call. Every other RPC refuses such a caller (UNAUTHENTICATED).
StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeEnrollmentChannelCredentials(std::string_view ca_pem);

// ---- Enrollment, client side -----------------------------------------------

// Connects to `host_port` ("host:port", "[v6]:port") with TLS 1.3, reads the
// certificate chain the server presents, and returns (PEM) the certificate
// whose SHA-256 DER fingerprint is `expected_fingerprint` (any form
// NormalizeFingerprint accepts), after checking that it is a CA and that the
// server's own certificate verifies against it for that host.
// PermissionDenied "CA fingerprint mismatch: expected X, server presented Y"
// if no presented certificate matches; Unavailable if the server cannot be
// reached or the handshake fails; DeadlineExceeded after `timeout`.
StatusOr<std::string> FetchAndPinCaCertificate(
    std::string_view host_port, std::string_view expected_fingerprint,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

struct KeyAndCsr {
  std::string key_pem;  // PKCS#8 P-256 private key; store with mode 0600
  std::string csr_pem;  // PKCS#10 request, subject CN=identity, self-signed
};
// A fresh ECDSA P-256 key and a certificate signing request for it. The CA
// ignores the CSR's subject and extensions (it sets its own); the CSR only
// proves possession of the key. InvalidArgument if `identity` is not valid
// (IsValidIdentity in common/peer_identity.h).
StatusOr<KeyAndCsr> CreateKeyAndCsr(std::string_view identity);

}  // namespace cairn

#endif  // CAIRN_COMMON_TLS_H_
