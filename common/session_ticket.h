// SessionTicket: the storage manager's signed permission for one client to
// run one backup, restore or browse against one media agent (proto/cairn/v1/
// media.proto, SignedTicket). The media agent verifies it with the server's
// certificate; it never needs to ask the server.
//
// Signature: ECDSA-SHA256 (or whatever the server key's type signs with via
// EVP_DigestSign) over the serialized SessionTicket bytes.
//
// Thread safety: pure functions.
#ifndef CAIRN_COMMON_SESSION_TICKET_H_
#define CAIRN_COMMON_SESSION_TICKET_H_

#include <cstdint>
#include <string>

#include "common/status.h"

namespace cairn {

struct SessionTicket {
  enum class Operation { kBackup, kRestore, kBrowse };
  Operation operation = Operation::kBackup;
  std::string client_id;
  uint64_t job_id = 0;
  std::string backup_id;
  int64_t expires_unix_us = 0;
  std::string media_id;
  std::string
      parent_backup_id;  // backup: the parent whose manifest it may read
  // The data key wrapped for the ticket's media agent (common/key_wrap.h);
  // empty for an unencrypted backup.
  std::string wrapped_key;
};

// Serializes and signs `ticket` with the PEM private key `key_pem`; returns
// the serialized SignedTicket.
StatusOr<std::string> SignTicket(const SessionTicket& ticket,
                                 const std::string& key_pem);

// Parses a SignedTicket, verifies its signature against the public key in
// the PEM certificate `signer_cert_pem`, and checks expiry against `now_us`.
// InvalidArgument if malformed; PermissionDenied if the signature does not
// verify or the ticket expired.
StatusOr<SessionTicket> VerifyTicket(const std::string& signed_ticket,
                                     const std::string& signer_cert_pem,
                                     int64_t now_us);

// What a media agent checks on every call: VerifyTicket, then that the
// ticket is for `media_id`, that `caller` (the identity in the caller's
// certificate) is the ticket's client, and that it allows `op`.
// PermissionDenied naming the mismatch otherwise.
StatusOr<SessionTicket> AuthorizeTicket(const std::string& signed_ticket,
                                        const std::string& signer_cert_pem,
                                        int64_t now_us,
                                        const std::string& media_id,
                                        const std::string& caller,
                                        SessionTicket::Operation op);

// "backup", "restore" or "browse".
const char* OperationName(SessionTicket::Operation op);

}  // namespace cairn

#endif  // CAIRN_COMMON_SESSION_TICKET_H_
