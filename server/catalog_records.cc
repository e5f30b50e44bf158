#include "server/catalog_records.h"

#include "common/strings.h"

namespace cairn {

Status ValidateCatalogId(std::string_view id, std::string_view what) {
  if (id.empty() || id.size() > 128 || id[0] == '.') {
    return absl::InvalidArgumentError(
        StrCat("invalid ", what, " '", id.substr(0, 140),
               "': 1-128 characters, not starting with '.'"));
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          StrCat("invalid ", what, " '", id.substr(0, 140),
                 "': only [A-Za-z0-9._-] are allowed"));
    }
  }
  return absl::OkStatus();
}

Status ValidateUserName(std::string_view name) {
  if (!IsValidIdentity(name)) {
    return absl::InvalidArgumentError(
        StrCat("invalid user name '", name.substr(0, 140),
               "': 1-128 characters from [A-Za-z0-9._@-], not starting with "
               "'.'"));
  }
  return absl::OkStatus();
}

std::string_view BackupStatusName(BackupStatus status) {
  switch (status) {
    case BackupStatus::kAvailable:
      return "available";
    case BackupStatus::kDamaged:
      return "damaged";
    case BackupStatus::kPruned:
      return "pruned";
  }
  return "unknown";
}

std::string_view JobKindName(JobKind kind) {
  switch (kind) {
    case JobKind::kBackup:
      return "backup";
    case JobKind::kRestore:
      return "restore";
    case JobKind::kFileRestore:
      return "file-restore";
    case JobKind::kRestoreBuild:
      return "restore-build";
  }
  return "unknown";
}

std::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace cairn
