// PeerAuthorizer: the catalog half of authorizing a caller (DESIGN.md
// section 8). The TLS handshake and common/peer_identity.h prove who the
// caller is and its role; this checks that the catalog still accepts that
// certificate, on every call:
//   agent:  a client with the certificate's identity exists, is not revoked,
//           and the certificate is the one it enrolled with (a certificate a
//           later enrollment superseded is refused);
//   media:  the same for a media agent;
//   admin, operator, helpdesk, auditor: a user with that name and role
//           exists, and if the user record names a certificate fingerprint,
//           it is this certificate's.
// Every refusal is PermissionDenied with a message that says why.
//
// Thread safety: thread-safe (the catalog is).
#ifndef CAIRN_SERVER_PEER_AUTHORIZER_H_
#define CAIRN_SERVER_PEER_AUTHORIZER_H_

#include "common/peer_identity.h"
#include "server/catalog.h"

namespace cairn {

class PeerAuthorizer {
 public:
  // `catalog` is not owned and must outlive the authorizer.
  explicit PeerAuthorizer(const Catalog* catalog) : catalog_(catalog) {}

  Status CheckActive(const PeerIdentity& peer) const;

 private:
  const Catalog* const catalog_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_PEER_AUTHORIZER_H_
