// ClientProfiles: clients' hardware profiles as the server keeps and serves
// them (DESIGN.md section 5). Agents report a profile after every Hello and
// when a backup starts (agent.proto, ProfileReport); the catalog stores each
// distinct profile once and keeps each client's history
// (Catalog::RecordClientProfile); a backup records the profile current
// when it was committed (BackupEntry::profile_ref). Knows nothing of gRPC.
//
// Thread safety: thread-safe (the catalog is; no state of its own).
#ifndef CAIRN_SERVER_CLIENT_PROFILES_H_
#define CAIRN_SERVER_CLIENT_PROFILES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "cairn/v1/profile.pb.h"
#include "common/status.h"
#include "server/catalog.h"

namespace cairn {

class ClientProfiles {
 public:
  struct Found {
    v1::HardwareProfile profile;
    std::string sha256_hex;
    std::string client_id;     // empty for a supplied profile
    int64_t reported_us = 0;   // 0 for a supplied profile
    std::string profile_zstd;  // as stored
    uint64_t raw_size = 0;
  };

  // `catalog` is not owned and must outlive this object.
  explicit ClientProfiles(Catalog* catalog) : catalog_(catalog) {}

  // DecompressHardwareProfile (common/hardware_profile.h) plus the
  // profile's id (SHA-256 of the serialized bytes).
  static StatusOr<Found> Decode(std::string_view profile_zstd,
                                uint64_t raw_size, std::string_view what);

  // Validates and records a profile `client_id` reported at `now_us`
  // (stored without its collection time, so an unchanged machine maps to
  // the same id). Returns whether it differed from the client's latest.
  StatusOr<bool> Record(const std::string& client_id,
                        std::string_view profile_zstd, uint64_t raw_size,
                        int64_t now_us);

  // The client's latest profile. NotFound if it has reported none.
  StatusOr<Found> Latest(const std::string& client_id) const;
  // The latest profile's id, or "" if the client has reported none.
  StatusOr<std::string> LatestId(const std::string& client_id) const;
  // The profile recorded with a backup. NotFound if the backup is unknown
  // or was recorded without one.
  StatusOr<Found> ForBackup(const std::string& backup_id) const;

 private:
  StatusOr<Found> Load(const std::string& sha256_hex) const;

  Catalog* const catalog_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_CLIENT_PROFILES_H_
