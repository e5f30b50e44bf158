#include "common/session_ticket.h"

#include "cairn/v1/media.pb.h"
#include "common/signing.h"
#include "common/strings.h"

namespace cairn {

StatusOr<std::string> SignTicket(const SessionTicket& t,
                                 const std::string& key_pem) {
  v1::SessionTicket proto;
  switch (t.operation) {
    case SessionTicket::Operation::kBackup:
      proto.set_operation(v1::SessionTicket::BACKUP);
      break;
    case SessionTicket::Operation::kRestore:
      proto.set_operation(v1::SessionTicket::RESTORE);
      break;
    case SessionTicket::Operation::kBrowse:
      proto.set_operation(v1::SessionTicket::BROWSE);
      break;
  }
  proto.set_client_id(t.client_id);
  proto.set_job_id(t.job_id);
  proto.set_backup_id(t.backup_id);
  proto.set_expires_unix_us(t.expires_unix_us);
  proto.set_media_id(t.media_id);
  proto.set_parent_backup_id(t.parent_backup_id);
  proto.set_wrapped_key(t.wrapped_key);
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
    case v1::SessionTicket::BROWSE:
      t.operation = SessionTicket::Operation::kBrowse;
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
  t.wrapped_key = proto.wrapped_key();
  return t;
}

const char* OperationName(SessionTicket::Operation op) {
  switch (op) {
    case SessionTicket::Operation::kBackup:
      return "backup";
    case SessionTicket::Operation::kRestore:
      return "restore";
    case SessionTicket::Operation::kBrowse:
      return "browse";
  }
  return "unknown";
}

StatusOr<SessionTicket> AuthorizeTicket(const std::string& signed_ticket,
                                        const std::string& signer_cert_pem,
                                        int64_t now_us,
                                        const std::string& media_id,
                                        const std::string& caller,
                                        SessionTicket::Operation op) {
  CAIRN_ASSIGN_OR_RETURN(SessionTicket t,
                         VerifyTicket(signed_ticket, signer_cert_pem, now_us));
  if (t.media_id != media_id) {
    return absl::PermissionDeniedError(StrCat(
        "ticket is for media agent '", t.media_id, "', not '", media_id, "'"));
  }
  if (t.client_id != caller) {
    return absl::PermissionDeniedError(StrCat(
        "ticket belongs to client '", t.client_id, "', not to '", caller, "'"));
  }
  if (t.operation != op) {
    return absl::PermissionDeniedError(
        StrCat("ticket does not allow a ", OperationName(op)));
  }
  return t;
}

}  // namespace cairn
