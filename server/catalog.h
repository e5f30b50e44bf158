// Catalog: the storage manager's metadata in RocksDB - clients, media agents,
// backups and their chains, jobs, enrollment tokens, users and the audit log
// (DESIGN.md section 2). It never holds image data.
//
// Durability and atomicity: every state change is exactly one RocksDB
// WriteBatch written with WriteOptions::sync, so after a call returns OK the
// change survives a crash, and a call that fails has written nothing. Two
// advisory updates are written unsynced (still one batch each, and made
// durable by the next synced write): TouchClient and UpdateJobProgress. A
// mutation validates everything it depends on before it writes; an invalid
// request (unknown id, wrong state, malformed record) returns an error and
// changes nothing. Composite changes are one batch: CommitBackup writes the
// backup, its index entry and its job's success together; ConsumeToken marks
// the token used and creates the client together; and a mutation given an
// `audit` entry writes that entry in the same batch, so an admin action and
// its audit record are never separated.
//
// Restart: Open() marks every job that was kRunning as kFailed with the error
// kServerStoppedError (one batch, with an audit entry per job); queued jobs
// stay queued.
//
// Errors: InvalidArgument for malformed ids or records; NotFound naming the
// id; AlreadyExists for a create that collides; FailedPrecondition for a
// state that forbids the change (finishing a finished job, a revoked client);
// PermissionDenied for an enrollment token that is unknown, used, expired or
// of the wrong role; DataLoss naming the key for a stored value that does not
// decode; ResourceExhausted for a full disk; Unavailable for other I/O errors.
//
// Keys and values: docs/formats/catalog.md.
//
// Thread safety: thread-safe. Reads go straight to RocksDB (multi-key reads
// use a snapshot); mutations are serialized by an internal mutex so each
// read-check-write sequence is atomic with respect to other mutations.
// REQUIRES: Close() is not called concurrently with any other call.
#ifndef CAIRN_SERVER_CATALOG_H_
#define CAIRN_SERVER_CATALOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "server/catalog_records.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace cairn {

struct CatalogOptions {
  // Returns the current time in microseconds since 1970 UTC. Tests inject a
  // fake clock; empty means the system clock.
  std::function<int64_t()> clock;
};

class Catalog {
 public:
  // The error a job gets when the server restarts while it runs.
  static constexpr std::string_view kServerStoppedError =
      "server stopped while the job was running";
  // The schema version this code reads and writes (MetaRecord).
  static constexpr uint32_t kSchemaVersion = 1;
  // CommitBackup's job_id for a backup that no job produced (consolidation).
  static constexpr uint64_t kNoJob = 0;

  // Opens the catalog in directory `dir`, creating it if missing, then fails
  // jobs left running by a previous server (see above; a running job whose
  // record is damaged is logged and left alone - reads of it keep returning
  // DataLoss - rather than keeping the server from starting).
  // FailedPrecondition if another process has it open or its schema is newer
  // than kSchemaVersion; DataLoss if the directory holds a database that is not
  // a catalog or is damaged.
  static StatusOr<std::unique_ptr<Catalog>> Open(const std::string& dir,
                                                 CatalogOptions options = {});

  // Closes (see Close()), ignoring errors.
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // Graceful shutdown: flushes memtables to SST files, syncs and closes the
  // database. Idempotent. Every later call returns FailedPrecondition.
  Status Close();

  // ---- Clients -----------------------------------------------------------

  // Creates a client without a token (single-machine mode, admin import).
  // Sets enrolled_us to now if 0. AlreadyExists if the id is taken.
  Status CreateClient(const Client& client, const AuditEntry* audit = nullptr);
  StatusOr<Client> GetClient(std::string_view client_id) const;
  // All clients, revoked ones included, sorted by id.
  StatusOr<std::vector<Client>> ListClients() const;
  // Records that the client called in (last_seen_us = now). Not synced: a
  // heartbeat lost in a crash is harmless.
  Status TouchClient(std::string_view client_id);
  // Sets the revoked flag (checked on every call). FailedPrecondition if
  // already revoked. Its backups and jobs are kept.
  Status RevokeClient(std::string_view client_id, std::string_view reason,
                      const AuditEntry* audit = nullptr);

  // ---- Media agents ------------------------------------------------------

  // Creates or replaces a media agent (registered_us kept from the existing
  // record, or set to now). FailedPrecondition if it exists and is revoked.
  Status PutMediaAgent(const MediaAgent& agent,
                       const AuditEntry* audit = nullptr);
  StatusOr<MediaAgent> GetMediaAgent(std::string_view media_agent_id) const;
  StatusOr<std::vector<MediaAgent>> ListMediaAgents() const;  // sorted by id
  Status RevokeMediaAgent(std::string_view media_agent_id,
                          std::string_view reason,
                          const AuditEntry* audit = nullptr);

  // ---- Enrollment tokens -------------------------------------------------

  // Issues a one-time token for `role` (kAgent or kMedia) valid for `ttl_us`
  // (> 0) from now. Only its SHA-256 is stored; the plaintext is returned
  // once, here.
  StatusOr<IssuedToken> CreateToken(Role role, int64_t ttl_us,
                                    std::string_view created_by,
                                    const AuditEntry* audit = nullptr);
  // All tokens (hashes only), sorted by hash.
  StatusOr<std::vector<EnrollmentToken>> ListTokens() const;
  // Enrolls a client: checks that `token` is known, unused, unexpired and of
  // role kAgent, then marks it used by `client.client_id` and creates the
  // client, in one batch. PermissionDenied (unknown, used, expired, wrong
  // role); AlreadyExists if the client id is taken - in every error case the
  // token stays unused. Returns the stored client.
  StatusOr<Client> ConsumeToken(std::string_view token, const Client& client,
                                const AuditEntry* audit = nullptr);
  // The same for a media agent (token role kMedia).
  StatusOr<MediaAgent> ConsumeMediaToken(std::string_view token,
                                         const MediaAgent& agent,
                                         const AuditEntry* audit = nullptr);

  // ---- Backups -----------------------------------------------------------

  // Records a committed backup. With a job (job_id != kNoJob) the job must be
  // a running backup job of the same client; it becomes kSucceeded with
  // backup_id set, in the same batch. The client must exist and not be
  // revoked; the id must be new (AlreadyExists); a parent must exist, belong
  // to the same client and not be newer. Sets committed_us, job_id and
  // status kAvailable.
  Status CommitBackup(const BackupEntry& backup, uint64_t job_id);
  StatusOr<BackupEntry> GetBackup(std::string_view backup_id) const;
  // Backups of a client, newest (by created_us) first. NotFound for an
  // unknown client.
  StatusOr<std::vector<BackupEntry>> ListBackups(
      std::string_view client_id) const;
  // The newest kAvailable backup of a client. NotFound if none.
  StatusOr<BackupEntry> LatestBackup(std::string_view client_id) const;
  // The chain ending at `backup_id`, oldest (a full) first, following
  // parent_id. DataLoss if a parent is missing or the chain loops.
  StatusOr<std::vector<BackupEntry>> BackupChain(
      std::string_view backup_id) const;
  Status SetBackupStatus(std::string_view backup_id, BackupStatus status,
                         const AuditEntry* audit = nullptr);
  // The customized image an earlier restore build of `parent_id` recorded
  // under `build_key` (BackupEntry::build_key; CommitBackup writes the
  // "R/" entry with the image). NotFound if there is none.
  StatusOr<BackupEntry> FindCustomizedImage(std::string_view parent_id,
                                            std::string_view build_key) const;

  // ---- Boot templates ----------------------------------------------------

  // Records a new template (created_us = now). The name must be a valid id
  // and new (AlreadyExists); its image must exist, be available
  // (FailedPrecondition) and have a kernel version.
  Status CreateTemplate(const BootTemplate& t,
                        const AuditEntry* audit = nullptr);
  StatusOr<BootTemplate> GetTemplate(std::string_view name) const;
  StatusOr<std::vector<BootTemplate>> ListTemplates() const;  // by name
  // Removes the record only; the image stays. NotFound if unknown.
  Status DeleteTemplate(std::string_view name,
                        const AuditEntry* audit = nullptr);

  // ---- Jobs --------------------------------------------------------------

  // Queues a job described by `spec` (kind, client_id, media_agent_id,
  // backup_id for restores and file restores, incremental, target,
  // source_path and partition for file restores, requested_by); the catalog
  // assigns job_id (the persisted counter, in the same batch), state kQueued
  // and created_us. The client must exist and not be revoked, a named media
  // agent must exist, a restore's backup must exist; a file restore needs a
  // source path and a target, other kinds must have neither source path nor
  // partition. Returns the stored job.
  StatusOr<Job> CreateJob(const Job& spec, const AuditEntry* audit = nullptr);
  StatusOr<Job> GetJob(uint64_t job_id) const;
  // Jobs matching `filter`, by ascending job id.
  StatusOr<std::vector<Job>> ListJobs(const JobFilter& filter = {}) const;
  // kQueued -> kRunning; sets started_us and, if not empty, media_agent_id
  // and backup_id (a backup job: the id its backup will have once it
  // succeeds).
  Status StartJob(uint64_t job_id, std::string_view media_agent_id = {},
                  std::string_view backup_id = {});
  // REQUIRES state kRunning (FailedPrecondition otherwise). Not synced: the
  // progress of a job is advisory, and a job running when the server dies is
  // failed on restart anyway. A later synced write makes it durable.
  Status UpdateJobProgress(uint64_t job_id, const JobProgress& progress);
  // Moves a job to a final state: kFailed (needs a non-empty `error`),
  // kCancelled, or kSucceeded (restore and file-restore jobs only, and only
  // from kRunning; a backup job succeeds through CommitBackup).
  // FailedPrecondition if the job is already final, nothing written.
  Status FinishJob(uint64_t job_id, JobState state, std::string_view error,
                   const AuditEntry* audit = nullptr);

  // ---- Users -------------------------------------------------------------

  // Creates or replaces a user (created_us kept, or set to now).
  Status PutUser(const User& user, const AuditEntry* audit = nullptr);
  StatusOr<User> GetUser(std::string_view name) const;
  StatusOr<std::vector<User>> ListUsers() const;  // sorted by name
  Status DeleteUser(std::string_view name, const AuditEntry* audit = nullptr);

  // ---- Hardware profiles -------------------------------------------------

  // Records that `client_id` reported the profile `blob` (content-addressed
  // by blob.sha256_hex, which the caller computed) at `reported_us`: the
  // blob is stored if new, and a history entry is added if the profile
  // differs from the client's latest, all in one batch. Returns whether an
  // entry was added. NotFound for an unknown client; InvalidArgument for a
  // malformed id or an empty profile.
  StatusOr<bool> RecordClientProfile(std::string_view client_id,
                                     const ProfileBlob& blob,
                                     int64_t reported_us);
  StatusOr<ProfileBlob> GetProfileBlob(std::string_view sha256_hex) const;
  // The client's profile history, oldest first.
  StatusOr<std::vector<ProfileHistoryEntry>> ListClientProfiles(
      std::string_view client_id) const;

  // ---- Audit log ---------------------------------------------------------

  // Appends `entry` with the next sequence number (persisted in the same
  // batch) and time_us = now if 0. Returns the stored entry.
  StatusOr<AuditEntry> AppendAudit(const AuditEntry& entry);
  // Up to `limit` entries (0: all) with seq > `after_seq`, ascending.
  StatusOr<std::vector<AuditEntry>> ListAudit(uint64_t after_seq,
                                              size_t limit) const;

 private:
  class Batch;

  Catalog(std::unique_ptr<rocksdb::DB> db, CatalogOptions options);

  int64_t Now() const;
  Status CheckOpen() const;
  // Open() steps: create or check the schema record and load the counters;
  // then fail the jobs a previous server left running.
  Status Initialize();
  Status FailRunningJobs();
  StatusOr<uint64_t> ReadCounter(const std::string& key) const;

  // Writes `batch` (with the counters it advanced, or both counters if
  // `force_counters`) in one RocksDB write, then adopts its counters.
  // REQUIRES: mu_ held.
  Status Commit(Batch* batch, bool sync = true, bool force_counters = false);
  // Adds `entry` to `batch` with the batch's next sequence number and
  // time_us = now if 0; `*stored` (if not null) receives the entry as
  // written. InvalidArgument without an action or actor. REQUIRES: mu_ held.
  Status StageAudit(Batch* batch, const AuditEntry& entry,
                    AuditEntry* stored = nullptr);
  Status StageAuditIf(Batch* batch, const AuditEntry* entry) {
    return entry == nullptr ? Status() : StageAudit(batch, *entry);
  }
  // The token's record if `token` is known, unused, unexpired and of
  // `expected_role`; PermissionDenied otherwise. REQUIRES: mu_ held.
  StatusOr<EnrollmentToken> CheckToken(std::string_view token,
                                       Role expected_role);

  // What GetClient/GetMediaAgent, RevokeClient/RevokeMediaAgent and
  // ConsumeToken/ConsumeMediaToken do, for T = Client or MediaAgent (defined
  // in catalog.cc). GetMachine: REQUIRES nothing; the others take mu_.
  template <typename T>
  StatusOr<T> GetMachine(std::string_view id) const;
  template <typename T>
  Status RevokeMachine(std::string_view id, std::string_view reason,
                       const AuditEntry* audit);
  template <typename T>
  StatusOr<T> EnrollWithToken(std::string_view token, const T& machine,
                              const AuditEntry* audit);

  std::unique_ptr<rocksdb::DB> db_;
  const CatalogOptions options_;
  std::mutex mu_;  // serializes mutations
  // Next values to allocate; mirror the persisted counters. Guarded by mu_.
  uint64_t next_job_id_ = 1;
  uint64_t next_audit_seq_ = 1;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_CATALOG_H_
