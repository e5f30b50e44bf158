#include "common/session_ticket.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "cairn/v1/media.pb.h"
#include "common/openssl_util.h"
#include "common/strings.h"

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

  auto bio = MemBio(key_pem);
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key)
    return absl::InvalidArgumentError(
        "ticket signing key is not a PEM private key");
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  size_t sig_len = 0;
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                         key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                     reinterpret_cast<const unsigned char*>(body.data()),
                     body.size()) != 1) {
    return absl::InternalError("ticket signing failed");
  }
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                     &sig_len,
                     reinterpret_cast<const unsigned char*>(body.data()),
                     body.size()) != 1) {
    return absl::InternalError("ticket signing failed");
  }
  sig.resize(sig_len);
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
  auto bio = MemBio(signer_cert_pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert)
    return absl::InvalidArgumentError("ticket signer certificate is not PEM");
  EvpPkeyPtr key(X509_get_pubkey(cert.get()));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  const std::string& body = signed_ticket.ticket();
  const std::string& sig = signed_ticket.signature();
  bool ok = key &&
            EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                                 key.get()) == 1 &&
            EVP_DigestVerify(
                ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                sig.size(), reinterpret_cast<const unsigned char*>(body.data()),
                body.size()) == 1;
  ERR_clear_error();
  if (!ok)
    return absl::PermissionDeniedError(
        "session ticket signature does not verify");
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
