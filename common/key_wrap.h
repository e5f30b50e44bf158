// Key wrapping for one recipient: the storage manager hands a backup's data
// key to one media agent (inside a session ticket, common/session_ticket.h)
// so that only that media agent - not the agent or admin that carries the
// ticket - can open it. Format: docs/formats/key-wrap.md.
//
// ECIES over the recipient's certificate key (P-256): an ephemeral P-256
// key, ECDH with the recipient's public key, HKDF-SHA256 of the shared
// secret (salt: both public points; info "cairn key wrap v1") into an
// AES-256-GCM key, which seals the secret with the header as AAD. A fresh
// ephemeral key per wrap, so one secret wrapped twice gives unrelated bytes.
// Hand-written on OpenSSL's EVP API because OpenSSL offers no ECIES and
// HPKE arrives only in OpenSSL 3.2 (Debian 12 ships 3.0).
//
// Thread safety: pure functions.
#ifndef CAIRN_COMMON_KEY_WRAP_H_
#define CAIRN_COMMON_KEY_WRAP_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn {

// Wraps `secret` (1-1024 bytes) for the holder of the private key of the PEM
// certificate `recipient_cert_pem`. InvalidArgument if the certificate is
// unreadable or its key is not P-256.
StatusOr<std::string> WrapKey(std::string_view secret,
                              const std::string& recipient_cert_pem);

// Opens what WrapKey made, with the recipient's PEM private key.
// InvalidArgument if `wrapped` is malformed; PermissionDenied if it was
// wrapped for another key or was altered (the two cannot be told apart).
StatusOr<std::string> UnwrapKey(std::string_view wrapped,
                                const std::string& recipient_key_pem);

}  // namespace cairn

#endif  // CAIRN_COMMON_KEY_WRAP_H_
