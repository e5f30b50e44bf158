#include "server/client_profiles.h"

#include "common/coding.h"
#include "common/crypto.h"
#include "common/hardware_profile.h"
#include "common/strings.h"

namespace cairn {

StatusOr<ClientProfiles::Found> ClientProfiles::Decode(
    std::string_view profile_zstd, uint64_t raw_size, std::string_view what) {
  Found f;
  std::string raw;
  CAIRN_ASSIGN_OR_RETURN(
      f.profile, DecompressHardwareProfile(profile_zstd, raw_size, what, &raw));
  crypto::Digest digest = crypto::Sha256(raw);
  f.sha256_hex = HexEncode(std::string_view(
      reinterpret_cast<const char*>(digest.data()), digest.size()));
  f.profile_zstd = std::string(profile_zstd);
  f.raw_size = raw_size;
  return f;
}

StatusOr<bool> ClientProfiles::Record(const std::string& client_id,
                                      std::string_view profile_zstd,
                                      uint64_t raw_size, int64_t now_us) {
  CAIRN_ASSIGN_OR_RETURN(
      v1::HardwareProfile profile,
      DecompressHardwareProfile(
          profile_zstd, raw_size,
          StrCat("the profile client '", client_id, "' reported")));
  // The same hardware reported twice is one profile: the collection time
  // lives in the history entry, not in the content that is hashed.
  profile.clear_collected_unix_us();
  ProfileBlob blob;
  CAIRN_ASSIGN_OR_RETURN(blob.profile_zstd,
                         CompressHardwareProfile(profile, &blob.raw_size));
  CAIRN_ASSIGN_OR_RETURN(Found f, Decode(blob.profile_zstd, blob.raw_size,
                                         "the canonical profile"));
  blob.sha256_hex = f.sha256_hex;
  return catalog_->RecordClientProfile(client_id, blob, now_us);
}

StatusOr<ClientProfiles::Found> ClientProfiles::Load(
    const std::string& sha256_hex) const {
  CAIRN_ASSIGN_OR_RETURN(ProfileBlob blob,
                         catalog_->GetProfileBlob(sha256_hex));
  CAIRN_ASSIGN_OR_RETURN(Found f,
                         Decode(blob.profile_zstd, blob.raw_size,
                                StrCat("stored profile ", sha256_hex)));
  if (f.sha256_hex != sha256_hex) {
    return absl::DataLossError(StrCat("stored profile ", sha256_hex,
                                      " does not match its id (", f.sha256_hex,
                                      ")"));
  }
  return f;
}

StatusOr<std::string> ClientProfiles::LatestId(
    const std::string& client_id) const {
  CAIRN_ASSIGN_OR_RETURN(std::vector<ProfileHistoryEntry> history,
                         catalog_->ListClientProfiles(client_id));
  return history.empty() ? std::string() : history.back().profile_sha256;
}

StatusOr<ClientProfiles::Found> ClientProfiles::Latest(
    const std::string& client_id) const {
  CAIRN_RETURN_IF_ERROR(catalog_->GetClient(client_id).status());
  CAIRN_ASSIGN_OR_RETURN(std::vector<ProfileHistoryEntry> history,
                         catalog_->ListClientProfiles(client_id));
  if (history.empty()) {
    return absl::NotFoundError(StrCat(
        "client '", client_id, "' has not reported a hardware profile yet"));
  }
  CAIRN_ASSIGN_OR_RETURN(Found f, Load(history.back().profile_sha256));
  f.client_id = client_id;
  f.reported_us = history.back().reported_us;
  return f;
}

StatusOr<ClientProfiles::Found> ClientProfiles::ForBackup(
    const std::string& backup_id) const {
  CAIRN_ASSIGN_OR_RETURN(BackupEntry backup, catalog_->GetBackup(backup_id));
  if (backup.profile_ref.empty()) {
    return absl::NotFoundError(StrCat("backup '", backup_id,
                                      "' was recorded without a hardware "
                                      "profile (its agent reported none)"));
  }
  CAIRN_ASSIGN_OR_RETURN(Found f, Load(backup.profile_ref));
  f.client_id = backup.client_id;
  CAIRN_ASSIGN_OR_RETURN(std::vector<ProfileHistoryEntry> history,
                         catalog_->ListClientProfiles(backup.client_id));
  for (const auto& e : history) {
    if (e.profile_sha256 == backup.profile_ref) f.reported_us = e.reported_us;
  }
  return f;
}

}  // namespace cairn
