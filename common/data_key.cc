#include "common/data_key.h"

#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "common/coding.h"
#include "common/crypto.h"
#include "common/env.h"
#include "common/strings.h"

namespace cairn {
namespace {
constexpr std::string_view kSalt = "cairn data key v1";
}

StatusOr<DataKey> DataKey::FromSecret(std::string_view secret) {
  if (secret.size() != kSize) {
    return absl::InvalidArgumentError(
        StrCat("data key must be ", kSize, " bytes, got ", secret.size()));
  }
  DataKey key;
  key.secret_ = std::string(secret);
  CAIRN_ASSIGN_OR_RETURN(
      key.encryption_key_,
      crypto::HkdfSha256(secret, kSalt, "chunk encryption", 32));
  CAIRN_ASSIGN_OR_RETURN(key.id_key_,
                         crypto::HkdfSha256(secret, kSalt, "chunk id", 32));
  CAIRN_ASSIGN_OR_RETURN(
      key.manifest_key_,
      crypto::HkdfSha256(secret, kSalt, "manifest signature", 32));
  CAIRN_ASSIGN_OR_RETURN(key.fingerprint_,
                         crypto::HkdfSha256(secret, kSalt, "fingerprint", 16));
  return key;
}

DataKey DataKey::Generate() {
  auto key = FromSecret(crypto::RandomString(kSize));
  if (!key.ok()) std::abort();  // HKDF cannot fail on valid input
  return *std::move(key);
}

StatusOr<DataKey> DataKey::LoadFromFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return ErrnoToStatus(errno, "stat key file", path);
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(StrCat(
        "key file ", path, " is accessible by group or others; chmod 600 it"));
  }
  std::string text;
  CAIRN_RETURN_IF_ERROR(Env::Default()->ReadFileToString(path, &text));
  std::string_view hex = ToStd(absl::StripAsciiWhitespace(text));
  std::string raw;
  if (hex.size() != 2 * kSize || !HexDecode(hex, &raw)) {
    return absl::InvalidArgumentError(
        StrCat("key file ", path, " must hold 64 hex digits (a 32-byte key)"));
  }
  return FromSecret(raw);
}

Status DataKey::SaveToFile(const std::string& path) const {
  return WritePrivateFileAtomically(path, HexEncode(secret_) + "\n");
}

std::string DataKey::FingerprintHex() const { return HexEncode(fingerprint_); }

}  // namespace cairn
