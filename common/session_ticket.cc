#include "common/session_ticket.h"

#include "cairn/v1/media.pb.h"
#include "common/signing.h"

namespace cairn {

StatusOr<std::string> SignTicket(const SessionTicket& t,
                                 const std::string& key_pem) {
  v1::SessionTicket proto;
  proto.set_operation(t.operation == SessionTicket::Operation::kBackup
                          ? v1::SessionTicket::BACKUP
                          : v1::SessionTicket::RESTORE);
  proto.set_client_id(t.client_id);
  proto.set_job_id(t.job_id);
  proto.set_backup_id(t.backup_id);
  proto.set_expires_unix_us(t.expires_unix_us);
  proto.set_media_id(t.media_id);
  proto.set_parent_backup_id(t.parent_backup_id);
  std::string body = proto.SerializeAsString();
  CAIRN_ASSIGN_OR_RETURN(std::string sig, SignWithKey(body, key_pem));
  v1::SignedTicket signed_ticket;
  signed_ticket.set_ticket(body);
  signed_ticket.set_signature(sig);
  return signed_ticket.SerializeAsString();
}

StatusOr<SessionTicket> VerifyTicket(const std::string& signed_bytes,
                                     const std::string& signer_cert_pem,
                                     int64_t now_us) {
  v1::SignedTicket signed_ticket;
  v1::SessionTicket proto;
  if (signed_bytes.empty() || !signed_ticket.ParseFromString(signed_bytes) ||
      !proto.ParseFromString(signed_ticket.ticket())) {
    return absl::InvalidArgumentError("malformed session ticket");
  }
  CAIRN_RETURN_IF_ERROR(
      VerifyWithCertificate(signed_ticket.ticket(), signed_ticket.signature(),
                            signer_cert_pem, "session ticket"));
  if (proto.expires_unix_us() <= now_us) {
    return absl::PermissionDeniedError("session ticket expired");
  }
  SessionTicket t;
  switch (proto.operation()) {
    case v1::SessionTicket::BACKUP:
      t.operation = SessionTicket::Operation::kBackup;
      break;
    case v1::SessionTicket::RESTORE:
      t.operation = SessionTicket::Operation::kRestore;
      break;
    default:
      return absl::InvalidArgumentError("session ticket has no operation");
  }
  t.client_id = proto.client_id();
  t.job_id = proto.job_id();
  t.backup_id = proto.backup_id();
  t.expires_unix_us = proto.expires_unix_us();
  t.media_id = proto.media_id();
  t.parent_backup_id = proto.parent_backup_id();
  return t;
}

}  // namespace cairn
