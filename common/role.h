// Role: who may do what in Cairn (DESIGN.md section 8). Kept free of gRPC
// and OpenSSL so the catalog and the CLIs can use it; certificates carry it
// (common/peer_identity.h) and the catalog stores its number.
#ifndef CAIRN_COMMON_ROLE_H_
#define CAIRN_COMMON_ROLE_H_

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace cairn {

// The roles of DESIGN.md section 8. The numbering is stable (the catalog
// stores it). kSystem is the server acting on its own (audit entries, jobs
// failed after a restart); it is never granted to a peer: the CA refuses to
// put it in a certificate and PeerIdentityFromCertificatePem refuses it.
enum class Role : uint8_t {
  kAdmin = 1,
  kOperator = 2,
  kHelpdesk = 3,
  kAuditor = 4,
  kAgent = 5,
  kMedia = 6,
  kSystem = 7,
};

// "admin", "operator", "helpdesk", "auditor", "agent", "media", "system".
std::string_view RoleName(Role role);
// Inverse of RoleName (exact, lower case). InvalidArgument naming the valid
// roles otherwise.
StatusOr<Role> ParseRole(std::string_view name);

// Identities are 1..128 characters of [A-Za-z0-9._@-], not starting with
// '.': every catalog client id, media agent id and user name
// (server/catalog_records.h) fits, and nothing needs escaping in a
// certificate or a URI.
bool IsValidIdentity(std::string_view identity);

}  // namespace cairn

#endif  // CAIRN_COMMON_ROLE_H_
