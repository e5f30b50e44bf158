// Detached signatures with Cairn's certificate keys: the storage manager
// signs session tickets (common/session_ticket.h) and media agents sign
// commit receipts (common/commit_receipt.h) with the private key of their
// TLS certificate; the other side verifies with that certificate.
//
// Algorithm: EVP_DigestSign with SHA-256, so the key's type decides the
// scheme (ECDSA P-256 for every key Cairn's CA issues). OpenSSL does the
// work; these two functions only own the PEM parsing and error mapping.
//
// Thread safety: pure functions.
#ifndef CAIRN_COMMON_SIGNING_H_
#define CAIRN_COMMON_SIGNING_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn {

// Signs `body` with the PEM private key `key_pem`. InvalidArgument if the
// key does not parse.
StatusOr<std::string> SignWithKey(std::string_view body,
                                  const std::string& key_pem);

// OK if `signature` is a valid signature of `body` by the public key of the
// first certificate in `cert_pem`. InvalidArgument if the certificate does
// not parse; PermissionDenied "<what> signature does not verify" otherwise.
Status VerifyWithCertificate(std::string_view body, std::string_view signature,
                             const std::string& cert_pem,
                             std::string_view what);

}  // namespace cairn

#endif  // CAIRN_COMMON_SIGNING_H_
