// PeerIdentity: who is calling, as proven by the caller's client certificate.
//
// Every Cairn certificate that authenticates a caller is issued by the
// server's internal CA (server/certificate_authority.h), which alone sets its
// subject and extensions. The identity and role are encoded as:
//
//   subject CN           = <identity>  (omitted beyond 64 characters,
//                                       the X.520 limit)
//   subjectAltName URI   = cairn://role/<role>/<identity>
//   extendedKeyUsage     includes clientAuth
//
// The URI SAN is authoritative; a CN must agree with it. <role> is one of
// RoleName()'s names except "system", <identity> matches IsValidIdentity(). A
// certificate from the CA without exactly one such URI (the server's own
// certificate, say) authenticates nobody.
//
// How a call is authorized (DESIGN.md section 8):
//   1. The TLS handshake (common/tls.h) verifies a presented client
//      certificate against the pinned CA, including its validity period. A
//      certificate from another CA, or an expired one, never gets past the
//      handshake.
//   2. Servers accept connections without a client certificate, because
//      enrollment (the one RPC that hands out certificates) must be callable
//      before the caller has one. So every other handler starts with
//      PeerIdentityFromContext(), which answers UNAUTHENTICATED when no
//      verified certificate was presented, then RequireRole().
//   3. Revocation is a catalog flag: the caller of this module looks up
//      PeerIdentity::cert_fingerprint in the catalog.
//
// Thread safety: all functions are thread-safe.
#ifndef CAIRN_COMMON_PEER_IDENTITY_H_
#define CAIRN_COMMON_PEER_IDENTITY_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "common/role.h"
#include "common/status.h"

namespace grpc {
class ServerContextBase;
class Status;
}  // namespace grpc

namespace cairn {

// "cairn://role/<role>/<identity>", the URI SAN that carries the role.
std::string RoleUri(Role role, std::string_view identity);

struct PeerIdentity {
  std::string identity;
  Role role = Role::kAgent;
  // SHA-256 of the DER client certificate, 64 lower-case hex digits. The
  // catalog's revocation flag is keyed by it.
  std::string cert_fingerprint;
};

// Reads identity and role from an already verified certificate (PEM).
// PermissionDenied if it carries no Cairn role (see the top of this file), is
// not valid for client authentication, or its CN and URI disagree;
// InvalidArgument if `cert_pem` does not parse.
// The certificate's signature and validity are NOT checked here: that is the
// TLS handshake's job.
StatusOr<PeerIdentity> PeerIdentityFromCertificatePem(
    std::string_view cert_pem);

// The identity of the caller of the current RPC.
// Unauthenticated if the connection presented no verified client certificate
// (the message tells the caller to enroll); otherwise as
// PeerIdentityFromCertificatePem.
StatusOr<PeerIdentity> PeerIdentityFromContext(
    const grpc::ServerContextBase& context);

// OK if `peer.role` is among `allowed`; otherwise PermissionDenied
// "role agent may not call <what>". `what` names the RPC, e.g.
// "cairn.v1.Health/Check".
Status RequireRole(const PeerIdentity& peer,
                   std::initializer_list<Role> allowed, std::string_view what);

// PeerIdentityFromContext followed by RequireRole: the first lines of every
// handler except Enroll.
StatusOr<PeerIdentity> AuthorizePeer(const grpc::ServerContextBase& context,
                                     std::initializer_list<Role> allowed,
                                     std::string_view what);

// Cairn Status to grpc::Status with the same code and message, for handlers
// returning a refusal.
grpc::Status ToGrpcStatus(const Status& status);

}  // namespace cairn

#endif  // CAIRN_COMMON_PEER_IDENTITY_H_
