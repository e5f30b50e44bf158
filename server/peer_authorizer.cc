#include "server/peer_authorizer.h"

#include "common/strings.h"

namespace cairn {
namespace {

// NotFound from the catalog becomes PermissionDenied: an unknown caller is a
// refusal, not a missing object.
Status Refusal(const Status& s, std::string_view what) {
  if (absl::IsNotFound(s) || absl::IsInvalidArgument(s)) {
    return absl::PermissionDeniedError(
        StrCat(what, " is not known to this server (enroll again)"));
  }
  return s;
}

Status CheckFingerprint(std::string_view enrolled, std::string_view presented,
                        std::string_view what) {
  if (!enrolled.empty() && enrolled != presented) {
    return absl::PermissionDeniedError(
        StrCat("the certificate of ", what,
               " has been superseded by a later enrollment"));
  }
  return Status();
}

}  // namespace

Status PeerAuthorizer::CheckActive(const PeerIdentity& peer) const {
  switch (peer.role) {
    case Role::kAgent: {
      std::string what = StrCat("client '", peer.identity, "'");
      auto client = catalog_->GetClient(peer.identity);
      if (!client.ok()) return Refusal(client.status(), what);
      if (client->revoked) {
        return absl::PermissionDeniedError(StrCat(what, " is revoked"));
      }
      return CheckFingerprint(client->cert_fingerprint, peer.cert_fingerprint,
                              what);
    }
    case Role::kMedia: {
      std::string what = StrCat("media agent '", peer.identity, "'");
      auto agent = catalog_->GetMediaAgent(peer.identity);
      if (!agent.ok()) return Refusal(agent.status(), what);
      if (agent->revoked) {
        return absl::PermissionDeniedError(StrCat(what, " is revoked"));
      }
      return CheckFingerprint(agent->cert_fingerprint, peer.cert_fingerprint,
                              what);
    }
    case Role::kAdmin:
    case Role::kOperator:
    case Role::kHelpdesk:
    case Role::kAuditor: {
      std::string what = StrCat("user '", peer.identity, "'");
      auto user = catalog_->GetUser(peer.identity);
      if (!user.ok()) return Refusal(user.status(), what);
      if (user->role != peer.role) {
        return absl::PermissionDeniedError(
            StrCat(what, " has role ", RoleName(user->role),
                   ", not the certificate's ", RoleName(peer.role)));
      }
      return CheckFingerprint(user->cert_fingerprint, peer.cert_fingerprint,
                              what);
    }
    case Role::kSystem:
      break;
  }
  return absl::PermissionDeniedError("role system is never granted to a peer");
}

}  // namespace cairn
