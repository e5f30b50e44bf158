// The storage manager's catalog records as domain types: clients, media
// agents, backups, jobs, enrollment tokens, users and audit entries.
//
// These are plain values. server/catalog.h stores and loads them; how they
// are encoded (protobuf values, hand-encoded keys) is private to
// server/catalog.cc and written up in docs/formats/catalog.md.
//
// Times are microseconds since 1970-01-01 UTC; 0 means "not yet". Roles are
// common/role.h (its numbering is what the catalog stores).
//
// Thread safety: plain structs and pure functions.
#ifndef CAIRN_SERVER_CATALOG_RECORDS_H_
#define CAIRN_SERVER_CATALOG_RECORDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/manifest.h"
#include "common/role.h"
#include "common/status.h"

namespace cairn {

// Ids of clients and media agents: 1-128 characters from [A-Za-z0-9._-], not
// starting with '.' (the charset of backup ids, ValidateBackupId). Returns
// InvalidArgument naming `what` ("client id", "media agent id").
Status ValidateCatalogId(std::string_view id, std::string_view what);
// User names: IsValidIdentity (common/role.h): 1-128 characters
// from [A-Za-z0-9._@-], not starting with '.'.
Status ValidateUserName(std::string_view name);

// A machine protected by a client agent. Created by enrollment
// (Catalog::ConsumeToken) or Catalog::CreateClient.
struct Client {
  std::string client_id;
  std::string display_name;      // e.g. the host name
  std::string fleet;             // may be empty
  std::string cert_fingerprint;  // lowercase hex SHA-256 of its certificate
  int64_t enrolled_us = 0;
  int64_t last_seen_us = 0;
  // Revocation is checked on every call (DESIGN.md section 8).
  bool revoked = false;
  int64_t revoked_us = 0;
  std::string revoked_reason;
};

// A hardware profile as the catalog stores it (content-addressed).
struct ProfileBlob {
  std::string sha256_hex;    // SHA-256 of the serialized HardwareProfile
  std::string profile_zstd;  // zstd frame of the serialized profile
  uint64_t raw_size = 0;
  int64_t first_seen_us = 0;
};

// One entry of a client's profile history.
struct ProfileHistoryEntry {
  std::string client_id;
  int64_t reported_us = 0;
  std::string profile_sha256;  // hex
};

// A media agent (cairn-media) owning a chunk store.
struct MediaAgent {
  std::string media_agent_id;
  std::string address;  // host:port
  std::string cert_fingerprint;
  std::string cert_pem;  // verifies its commit receipts; empty if embedded
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  int64_t registered_us = 0;
  int64_t last_seen_us = 0;
  bool revoked = false;
  int64_t revoked_us = 0;
  std::string revoked_reason;
};

enum class BackupStatus : uint8_t {
  kAvailable = 1,  // committed and restorable
  kDamaged = 2,    // verify found damage in its manifest or chunks
  kPruned = 3,     // removed by retention; the record stays for history
};
std::string_view BackupStatusName(BackupStatus status);

// One committed image backup. The image itself lives on the media agent; the
// catalog holds where, what chain it belongs to, and its sizes.
struct BackupEntry {
  std::string backup_id;  // ValidateBackupId
  std::string client_id;
  std::string media_agent_id;
  BackupKind kind = BackupKind::kFull;
  std::string parent_id;  // the previous backup of the chain (incrementals)
  std::vector<std::string> consolidated_from;  // synthetic fulls only
  std::string manifest_ref;  // manifest name on the media agent
  int64_t created_us = 0;    // the point in time the image represents
  int64_t committed_us = 0;  // set by the catalog
  uint64_t image_size = 0;
  uint64_t stored_bytes = 0;  // bytes this backup added to the store
  uint64_t chunk_count = 0;
  std::string profile_ref;  // hardware profile reference
  BackupStatus status = BackupStatus::kAvailable;
  uint64_t job_id = 0;     // the job that produced it; 0 if none
  bool encrypted = false;  // stored under the storage policy's data key
  // kCustomized: "<target profile sha256>/<plan digest>", the restore-build
  // cache key with parent_id (Catalog::FindCustomizedImage).
  std::string build_key;
};

// kRestore writes a whole image; kFileRestore restores files of a backup
// onto a client through its agent (docs/browse.md, "browse get --to-agent");
// kRestoreBuild makes a customized image of a backup on the media agent
// (server/restore_builds.h) and succeeds by committing it.
enum class JobKind : uint8_t {
  kBackup = 1,
  kRestore = 2,
  kFileRestore = 3,
  kRestoreBuild = 4,
};
std::string_view JobKindName(JobKind kind);

// Allowed transitions: kQueued -> kRunning | kFailed | kCancelled;
// kRunning -> kSucceeded | kFailed | kCancelled. The last three are final.
enum class JobState : uint8_t {
  kQueued = 1,
  kRunning = 2,
  kSucceeded = 3,
  kFailed = 4,
  kCancelled = 5,
};
std::string_view JobStateName(JobState state);
inline bool IsFinal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed ||
         s == JobState::kCancelled;
}

struct JobProgress {
  uint64_t done_bytes = 0;
  uint64_t total_bytes = 0;
  uint64_t bytes_per_second = 0;
  std::string phase;  // optional: what the job is doing now
};

struct Job {
  uint64_t job_id = 0;  // allocated by the catalog, from 1, never reused
  JobKind kind = JobKind::kBackup;
  JobState state = JobState::kQueued;
  std::string client_id;       // the machine backed up or restored to
  std::string media_agent_id;  // may be empty until assigned
  // Backup jobs: the backup produced (set by CommitBackup). Restore and
  // file-restore jobs: the backup restored.
  std::string backup_id;
  bool incremental = false;  // backup jobs
  // Restore jobs (agent/image_restore.h): write only what the target lacks;
  // re-read and check it after writing; run the agent's reboot_command
  // after success.
  bool resume = false;
  bool verify = true;
  bool reboot = false;
  // Backup jobs: the source path on the client. Restore jobs: device, path
  // or hypervisor spec. File-restore jobs: the absolute path on the client
  // that the restored item gets.
  std::string target;
  // File-restore jobs: the normalized path in the backup's file system, and
  // that file system (partition number, 0 for a whole disk; unset: the root
  // file system). Empty / unset for other kinds.
  std::string source_path;
  std::optional<uint32_t> partition;
  std::string requested_by;  // user name, or "scheduler"
  int64_t created_us = 0;
  int64_t started_us = 0;
  int64_t finished_us = 0;
  JobProgress progress;
  // Set when kFailed (and optionally kCancelled). A succeeded restore job:
  // the agent's summary (chunks written / already in place, verified).
  std::string error;
  // kRestoreBuild: the customized image it made (set when it succeeds).
  std::string result_backup_id;
};

// A generic boot template: an image of the catalog whose kernel a restore
// build may install (docs/restore-build.md).
struct BootTemplate {
  std::string name;      // ValidateCatalogId
  std::string image_id;  // a BackupEntry
  std::string description;
  std::string kernel_version;
  std::string os_name;
  std::string profile_sha256;
  uint64_t image_size = 0;
  int64_t created_us = 0;  // set by the catalog
  std::string created_by;
};

// Selects jobs for Catalog::ListJobs. Unset fields match everything.
struct JobFilter {
  std::optional<JobState> state;
  std::optional<std::string> client_id;
  uint64_t after_job_id = 0;  // only ids greater than this (paging)
  size_t limit = 0;           // 0: no limit
};

// A one-time enrollment token. Only the SHA-256 of the token is stored.
struct EnrollmentToken {
  std::string token_hash;    // lowercase hex SHA-256 of the plaintext token
  Role role = Role::kAgent;  // kAgent or kMedia
  std::string created_by;
  int64_t created_us = 0;
  int64_t expires_us = 0;
  bool used = false;
  std::string used_by;  // the client or media agent id it enrolled
  int64_t used_us = 0;
};

// What Catalog::CreateToken returns: the plaintext token, shown once.
struct IssuedToken {
  std::string token;  // give this to the enrolling machine; never stored
  EnrollmentToken record;
};

// One entry of the append-only audit log.
struct AuditEntry {
  uint64_t seq = 0;     // assigned by the catalog, from 1, never reused
  int64_t time_us = 0;  // assigned by the catalog when 0
  std::string actor;    // user, client or media agent id, or "cairn-server"
  Role role = Role::kSystem;
  std::string action;  // e.g. "client.revoke", "token.create", "job.cancel"
  std::string target;  // e.g. "client/pc-17", "job/42"
  std::string result;  // "ok", "denied", or an error message
  std::string details;
};

// An administrator, operator, helpdesk or auditor account.
struct User {
  std::string name;  // ValidateUserName
  Role role = Role::kAdmin;
  std::string cert_fingerprint;
  int64_t created_us = 0;  // set by the catalog on first Put
};

}  // namespace cairn

#endif  // CAIRN_SERVER_CATALOG_RECORDS_H_
