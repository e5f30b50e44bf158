// JobEngine: runs backup, restore and file-restore jobs on the connected
// agents (DESIGN.md sections 3 and 6). It knows nothing of gRPC: admin
// handlers call StartBackup / StartRestore / StartFileRestore / Cancel, the
// agent stream handler reports sessions, progress and results.
//
// Life of a job:
//   queued    CreateJob in the catalog. It waits there (across server
//             restarts too) until its client is connected and has no other
//             job running: the engine runs at most one job per client.
//   running   the engine picks a media agent (the embedded one, or for an
//             incremental the one holding the parent, else a registered
//             one), signs a SessionTicket for it (ticket_ttl), pushes the
//             BackupAssignment/RestoreAssignment down the client's session
//             and marks the job running (StartJob). The job is bound to that
//             session. A file restore goes to the media agent holding the
//             backup with a BROWSE ticket for the target client (the data
//             key wrapped for that media agent, as GrantBrowse does) and no
//             data key in the FileRestoreAssignment: the agent reads files
//             through BrowseService and never sees the key.
//   progress  UpdateJobProgress (advisory, unsynced).
//   result    backup ok: the media agent has already committed the manifest
//             (checked through `committed_check` for the embedded one; a
//             separate media agent's signed commit receipt, forwarded by
//             the agent, must verify and match the job); CommitBackup
//             records the backup and the job's success in one batch - the
//             backup exists from then on. Restore and file restore ok:
//             FinishJob(kSucceeded) (both first record the bytes they
//             restored, JobOutcome::image_size, as their progress; a restore
//             keeps the agent's figures - chunks written, skipped, verified
//             - as the job's message).
//             Not ok: FinishJob(kFailed, the agent's error).
//   cancel    a queued job is cancelled in place; a running one also gets a
//             CancelAssignment pushed to its agent. A late result is ignored.
//   session   when the session a job is bound to ends, the job waits up to
//             `reconnect_grace` for its client to reconnect and list it as
//             still running in its Hello (it is then bound to the new
//             session and goes on); otherwise - grace over, or the client
//             reconnected without listing it - it fails with
//             kAgentDisconnectedError. A network blip does not fail a long
//             backup. During Shutdown() sessions end without failing jobs:
//             the catalog fails them with its own reason on the next Open.
// Revoking a client (ClientRevoked) closes its session and fails its queued
// jobs. Every state change notifies `events`.
//
// Agent reports are checked: a report for a job that is not running on that
// client's session is refused (PermissionDenied / FailedPrecondition) and
// changes nothing - an agent may touch only its own jobs.
//
// Thread safety: thread-safe. Internally one mutex serializes job
// transitions; catalog writes happen under it, network sends never block.
#ifndef CAIRN_SERVER_JOB_ENGINE_H_
#define CAIRN_SERVER_JOB_ENGINE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/agent_registry.h"
#include "server/agent_session.h"
#include "server/catalog.h"
#include "server/job_events.h"

namespace cairn {

// The media agent id of the one embedded in cairn-server (--embedded-media).
inline constexpr char kEmbeddedMediaId[] = "embedded";

struct JobEngineOptions {
  // Signs session tickets: the server certificate's private key (PEM). The
  // media agents verify with the server certificate.
  std::string ticket_key_pem;
  // Embedded media agent: when true, jobs go to kEmbeddedMediaId (which must
  // exist in the catalog as a media agent) at `embedded_media_address`
  // (empty: agents dial the server's own address).
  bool embedded_media = false;
  std::string embedded_media_address;
  // The embedded media agent's certificate (the server's own): data keys are
  // wrapped for it in tickets (common/key_wrap.h).
  std::string embedded_media_cert_pem;
  // The default storage policy's data key (32 bytes); empty: backups are not
  // encrypted. Handed to an agent only inside its own job's assignment.
  std::string data_key;
  std::chrono::seconds ticket_ttl = std::chrono::hours(12);
  // How long a running job outlives its agent's connection (see above);
  // zero: it fails at once.
  std::chrono::milliseconds reconnect_grace = std::chrono::seconds(60);
  uint32_t chunk_size = 4u << 20;
  int zstd_level = 1;
  // Called before a successful backup is recorded: OK if media agent
  // `media_id` holds a committed manifest for `backup_id`. Empty: trust the
  // agent's report.
  std::function<Status(const std::string& media_id,
                       const std::string& backup_id)>
      committed_check;
  // Microseconds since the epoch; empty: the system clock.
  std::function<int64_t()> clock;
  // Cancel() of a running job that runs in the server itself (a restore
  // build, server/restore_builds.h) calls this after marking it cancelled.
  std::function<void(uint64_t job_id)> cancel_server_job;
};

struct BackupJobRequest {
  std::string client_id;
  std::string source_path;  // on the client
  bool incremental = false;
  std::string requested_by;
};

struct RestoreJobRequest {
  std::string backup_id;
  std::string client_id;    // target machine; empty: the backup's client
  std::string target_path;  // on the target machine
  std::string requested_by;
  bool resume = false;  // RestoreCommand options (agent.proto)
  bool verify = true;
  bool reboot = false;
};

// Files of a backup restored onto a client through its agent
// (docs/browse.md, `cairnctl browse get --to-agent`).
struct FileRestoreJobRequest {
  std::string backup_id;
  std::optional<uint32_t> partition;  // unset: the root file system
  std::string source_path;  // in the backup; normalized before it is stored
  std::string client_id;    // target machine; empty: the backup's client
  std::string target_path;  // absolute on the target, no ".." components
  std::string requested_by;
};

// Permission to browse one backup's files on the media agent that holds it
// (BrowseService, proto/cairn/v1/browse.proto).
struct BrowseGrant {
  std::string backup_id;
  std::string client_id;  // the machine the backup is of
  std::string media_id;
  std::string media_address;  // empty: the server's own address (embedded)
  std::string ticket;         // serialized SignedTicket (BROWSE)
  int64_t expires_unix_us = 0;
};

class JobEngine {
 public:
  static constexpr std::string_view kAgentDisconnectedError =
      "agent disconnected during the job";

  // None is owned; all must outlive the engine.
  JobEngine(Catalog* catalog, AgentRegistry* registry, JobEvents* events,
            JobEngineOptions options);
  ~JobEngine();

  // Queues a job (dispatching it at once if the client is connected and
  // idle). Returns the job as stored. InvalidArgument for an empty path or
  // malformed id; NotFound for an unknown client or backup;
  // FailedPrecondition for a revoked client. `audit` is written in the same
  // batch as the new job.
  StatusOr<Job> StartBackup(const BackupJobRequest& request,
                            const AuditEntry* audit = nullptr);
  StatusOr<Job> StartRestore(const RestoreJobRequest& request,
                             const AuditEntry* audit = nullptr);
  // As StartRestore, for files: the source path is normalized
  // (NormalizeBrowsePath) and the target path must be absolute, below "/",
  // without ".." components (both InvalidArgument, "path traversal" for
  // ".."); "." and empty components are dropped. The backup must be
  // available (FailedPrecondition), the client must exist (NotFound) and not
  // be revoked (FailedPrecondition).
  StatusOr<Job> StartFileRestore(const FileRestoreJobRequest& request,
                                 const AuditEntry* audit = nullptr);
  // A BROWSE ticket for `caller` (the identity in its certificate) on the
  // media agent holding `backup_id`, valid for `ttl`, with the data key
  // wrapped for that media agent. NotFound for an unknown backup;
  // FailedPrecondition if it did not succeed or its media agent is not
  // available.
  StatusOr<BrowseGrant> GrantBrowse(const std::string& backup_id,
                                    const std::string& caller,
                                    std::chrono::seconds ttl);
  // Cancels a queued or running job; FailedPrecondition if it already ended.
  StatusOr<Job> Cancel(uint64_t job_id, const AuditEntry* audit = nullptr);

  // ---- The agent stream --------------------------------------------------

  // Registers `session` as the client's (replacing an older one), keeps the
  // client's running jobs listed in `still_running` bound to it, and
  // dispatches the client's next queued job. Returns the session id.
  // Unavailable during shutdown.
  StatusOr<uint64_t> AgentConnected(const std::string& client_id,
                                    std::shared_ptr<AgentSession> session,
                                    const std::vector<uint64_t>& still_running);
  // The session ended: fails the jobs bound to it (not during shutdown).
  void AgentDisconnected(const std::string& client_id, uint64_t session_id);
  Status ReportProgress(const std::string& client_id, uint64_t session_id,
                        const JobProgressReport& report);
  Status ReportResult(const std::string& client_id, uint64_t session_id,
                      const JobOutcome& outcome);

  // After Catalog::RevokeClient: closes the client's session and fails its
  // queued jobs.
  void ClientRevoked(const std::string& client_id);

  // Stops dispatching and closes every agent session; running jobs stay
  // running in the catalog (the next Open fails them). Idempotent.
  void Shutdown();

 private:
  struct ActiveJob {
    JobKind kind = JobKind::kBackup;
    std::string client_id;
    uint64_t session_id = 0;
    std::string media_id;
    std::string backup_id;
    std::string parent_id;
    std::string media_cert_pem;
    int64_t started_us = 0;
    // When its session ended (0: bound to a live session); the job fails
    // once reconnect_grace has passed.
    int64_t orphaned_since_us = 0;
  };
  struct MediaChoice {
    std::string media_id;
    std::string address;
    std::string cert_pem;  // wraps the data key for it; may be empty
  };

  int64_t Now() const;
  // Dispatches the client's oldest queued job if it is connected and idle;
  // a job that cannot be dispatched (no media agent, bad backup) fails and
  // the next one is tried. REQUIRES: mu_ held.
  void DispatchLocked(const std::string& client_id);
  Status DispatchJobLocked(const Job& job, uint64_t session_id);
  // Creates the job in the catalog (with `audit` in the same batch) and
  // dispatches it if its client is idle. Takes mu_.
  StatusOr<Job> Enqueue(const Job& spec, const AuditEntry* audit);
  // A restore's spec from its backup (which must be available): client
  // (`client_id`, else the backup's), media agent, backup id.
  StatusOr<Job> RestoreSpec(const std::string& backup_id,
                            const std::string& client_id);
  StatusOr<MediaChoice> ChooseMediaLocked(const std::string& preferred);
  // The media agent holding `backup`; FailedPrecondition if it is not
  // available. REQUIRES: mu_ held.
  StatusOr<MediaChoice> MediaHoldingLocked(const BackupEntry& backup);
  // The data key wrapped for a media agent's certificate; empty when
  // backups are not encrypted. REQUIRES: mu_ held.
  StatusOr<std::string> WrapDataKeyLocked(
      const std::string& media_cert_pem) const;
  StatusOr<std::string> SignTicketLocked(const Job& job,
                                         const ActiveJob& active);
  // A signed BROWSE ticket for `client_id` (the identity in its
  // certificate) on `media` for `backup_id` (with `job_id`, 0 for none),
  // expiring at `expires_us`, with the data key wrapped for that media
  // agent. GrantBrowse and file-restore jobs use it. REQUIRES: mu_ held.
  StatusOr<std::string> SignBrowseTicketLocked(const std::string& backup_id,
                                               const MediaChoice& media,
                                               const std::string& client_id,
                                               uint64_t job_id,
                                               int64_t expires_us) const;
  // Marks a running job final and forgets it. REQUIRES: mu_ held.
  void FinishActiveLocked(uint64_t job_id, JobState state,
                          std::string_view error,
                          const AuditEntry* audit = nullptr);
  StatusOr<ActiveJob*> ActiveForLocked(const std::string& client_id,
                                       uint64_t session_id, uint64_t job_id);
  std::string NewBackupIdLocked(const std::string& client_id, int64_t now_us);
  // Fails jobs orphaned longer than reconnect_grace (and, with `client`,
  // that client's orphaned jobs at once). REQUIRES: mu_ held.
  void FailOrphansLocked(const std::string* client);
  // The thread that runs FailOrphansLocked while jobs are orphaned.
  void ReapOrphans();
  // A backup on a separate media agent is recorded only with that media
  // agent's signed CommitReceipt matching the job (common/commit_receipt.h).
  Status CheckReceiptLocked(const ActiveJob& a, uint64_t job_id,
                            const JobOutcome& outcome);

  Catalog* const catalog_;
  AgentRegistry* const registry_;
  JobEvents* const events_;
  const JobEngineOptions options_;

  std::mutex mu_;
  std::map<uint64_t, ActiveJob> active_;  // running jobs; guarded by mu_
  bool shutdown_ = false;                 // guarded by mu_
  uint64_t id_counter_ = 0;               // guarded by mu_
  std::condition_variable orphans_cv_;    // wakes the reaper
  std::thread reaper_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_JOB_ENGINE_H_
