// CommitReceipt: a media agent's signed statement that it has committed a
// backup's manifest (proto/cairn/v1/media.proto, SignedCommitReceipt).
//
// The storage manager never talks to a media agent on the data path: the
// client agent does. So that a client agent cannot make the catalog record
// a backup that no media agent holds, a separate media agent signs a
// receipt with its certificate key when CommitBackup succeeds; the agent
// forwards it in its job result and the server verifies it against the
// certificate it kept when that media agent enrolled, then checks every
// field against the job before it records the backup.
//
// Thread safety: pure functions.
#ifndef CAIRN_COMMON_COMMIT_RECEIPT_H_
#define CAIRN_COMMON_COMMIT_RECEIPT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn {

struct CommitReceipt {
  std::string media_id;
  std::string client_id;
  uint64_t job_id = 0;
  std::string backup_id;
  std::string manifest_sha256;  // 32 raw bytes
  uint64_t image_size = 0;
  int64_t committed_unix_us = 0;
};

// The SHA-256 (32 raw bytes) of an encoded manifest, as receipts carry it.
std::string ManifestDigest(std::string_view encoded_manifest);

// Serializes and signs `receipt` with the PEM private key `key_pem`;
// returns the serialized SignedCommitReceipt.
StatusOr<std::string> SignCommitReceipt(const CommitReceipt& receipt,
                                        const std::string& key_pem);

// Parses a SignedCommitReceipt and verifies its signature with the first
// certificate in `media_cert_pem`. InvalidArgument if malformed (including
// empty); PermissionDenied if the signature does not verify.
StatusOr<CommitReceipt> VerifyCommitReceipt(std::string_view signed_receipt,
                                            const std::string& media_cert_pem);

}  // namespace cairn

#endif  // CAIRN_COMMON_COMMIT_RECEIPT_H_
