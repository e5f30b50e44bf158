#include "common/commit_receipt.h"

#include <openssl/sha.h>

#include "cairn/v1/media.pb.h"
#include "common/signing.h"

namespace cairn {

std::string ManifestDigest(std::string_view encoded_manifest) {
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(encoded_manifest.data()),
         encoded_manifest.size(),
         reinterpret_cast<unsigned char*>(digest.data()));
  return digest;
}

StatusOr<std::string> SignCommitReceipt(const CommitReceipt& r,
                                        const std::string& key_pem) {
  v1::CommitReceipt proto;
  proto.set_media_id(r.media_id);
  proto.set_client_id(r.client_id);
  proto.set_job_id(r.job_id);
  proto.set_backup_id(r.backup_id);
  proto.set_manifest_sha256(r.manifest_sha256);
  proto.set_image_size(r.image_size);
  proto.set_committed_unix_us(r.committed_unix_us);
  std::string body = proto.SerializeAsString();
  CAIRN_ASSIGN_OR_RETURN(std::string sig, SignWithKey(body, key_pem));
  v1::SignedCommitReceipt signed_receipt;
  signed_receipt.set_receipt(std::move(body));
  signed_receipt.set_signature(std::move(sig));
  return signed_receipt.SerializeAsString();
}

StatusOr<CommitReceipt> VerifyCommitReceipt(std::string_view signed_bytes,
                                            const std::string& media_cert_pem) {
  v1::SignedCommitReceipt signed_receipt;
  v1::CommitReceipt proto;
  if (signed_bytes.empty() ||
      !signed_receipt.ParseFromArray(signed_bytes.data(),
                                     static_cast<int>(signed_bytes.size())) ||
      !proto.ParseFromString(signed_receipt.receipt())) {
    return absl::InvalidArgumentError("malformed commit receipt");
  }
  CAIRN_RETURN_IF_ERROR(VerifyWithCertificate(
      signed_receipt.receipt(), signed_receipt.signature(), media_cert_pem,
      "commit receipt"));
  CommitReceipt r;
  r.media_id = proto.media_id();
  r.client_id = proto.client_id();
  r.job_id = proto.job_id();
  r.backup_id = proto.backup_id();
  r.manifest_sha256 = proto.manifest_sha256();
  r.image_size = proto.image_size();
  r.committed_unix_us = proto.committed_unix_us();
  return r;
}

}  // namespace cairn
