#include "server/job_engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/time/time.h"
#include "common/coding.h"
#include "common/commit_receipt.h"
#include "common/crypto.h"
#include "common/key_wrap.h"
#include "common/paths.h"
#include "common/session_ticket.h"
#include "common/strings.h"
#include "media_agent/file_catalogue.h"

namespace cairn {
namespace {

Status CheckPath(std::string_view path, std::string_view what) {
  if (path.empty() || path.size() > kMaxPathBytes ||
      path.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat(what, " must be 1..", kMaxPathBytes, " bytes without NUL"));
  }
  return Status();
}

// "/srv//data/./x/" -> "/srv/data/x": absolute, below "/", no ".."
// components (InvalidArgument).
StatusOr<std::string> NormalizeTargetPath(std::string_view path) {
  CAIRN_RETURN_IF_ERROR(CheckPath(path, "target path"));
  CAIRN_ASSIGN_OR_RETURN(std::vector<std::string> parts,
                         SplitAbsolutePath(path, "target path"));
  std::string out = parts.empty() ? "" : JoinAbsolutePath(parts, parts.size());
  if (out.empty()) {
    return absl::InvalidArgumentError(
        "the target path must name a file or directory below '/', not '/' "
        "itself");
  }
  return out;
}

}  // namespace

JobEngine::JobEngine(Catalog* catalog, AgentRegistry* registry,
                     JobEvents* events, JobEngineOptions options)
    : catalog_(catalog),
      registry_(registry),
      events_(events),
      options_(std::move(options)) {
  if (options_.reconnect_grace.count() > 0) {
    reaper_ = std::thread([this] { ReapOrphans(); });
  }
}

JobEngine::~JobEngine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  orphans_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}

int64_t JobEngine::Now() const {
  if (options_.clock) return options_.clock();
  return absl::ToUnixMicros(absl::Now());
}

std::string JobEngine::NewBackupIdLocked(const std::string& client_id,
                                         int64_t now_us) {
  std::string stamp = absl::FormatTime(
      "%Y%m%dT%H%M%SZ", absl::FromUnixMicros(now_us), absl::UTCTimeZone());
  // Client ids are at most 128 characters of the backup id alphabet; keep
  // the whole id within ValidateBackupId's 128.
  return StrCat(client_id.substr(0, 128 - 1 - stamp.size() - 1 - 4), "-", stamp,
                "-", HexEncode(crypto::RandomString(2)));
}

StatusOr<Job> JobEngine::Enqueue(const Job& spec, const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(Job job, catalog_->CreateJob(spec, audit));
  events_->Notify();
  DispatchLocked(job.client_id);
  return catalog_->GetJob(job.job_id);
}

StatusOr<Job> JobEngine::RestoreSpec(const std::string& backup_id,
                                     const std::string& client_id) {
  CAIRN_ASSIGN_OR_RETURN(BackupEntry backup, catalog_->GetBackup(backup_id));
  if (backup.status != BackupStatus::kAvailable) {
    return absl::FailedPreconditionError(
        StrCat("backup '", backup.backup_id, "' is ",
               BackupStatusName(backup.status), ", not available"));
  }
  Job spec;
  spec.client_id = client_id.empty() ? backup.client_id : client_id;
  spec.media_agent_id = backup.media_agent_id;
  spec.backup_id = backup.backup_id;
  return spec;
}

StatusOr<Job> JobEngine::StartBackup(const BackupJobRequest& request,
                                     const AuditEntry* audit) {
  CAIRN_RETURN_IF_ERROR(CheckPath(request.source_path, "source path"));
  Job spec;
  spec.kind = JobKind::kBackup;
  spec.client_id = request.client_id;
  spec.incremental = request.incremental;
  spec.target = request.source_path;  // a backup job's target is its source
  spec.requested_by = request.requested_by;
  return Enqueue(spec, audit);
}

StatusOr<Job> JobEngine::StartRestore(const RestoreJobRequest& request,
                                      const AuditEntry* audit) {
  CAIRN_RETURN_IF_ERROR(CheckPath(request.target_path, "target path"));
  CAIRN_ASSIGN_OR_RETURN(Job spec,
                         RestoreSpec(request.backup_id, request.client_id));
  spec.kind = JobKind::kRestore;
  spec.target = request.target_path;
  spec.requested_by = request.requested_by;
  spec.resume = request.resume;
  spec.verify = request.verify;
  spec.reboot = request.reboot;
  return Enqueue(spec, audit);
}

StatusOr<Job> JobEngine::StartFileRestore(const FileRestoreJobRequest& request,
                                          const AuditEntry* audit) {
  if (request.source_path.empty()) {
    return absl::InvalidArgumentError("name the path to restore in the backup");
  }
  auto source = NormalizeBrowsePath(request.source_path);
  if (!source.ok()) {
    return Status(source.status().code(),
                  StrCat("source path: ", ToStd(source.status().message())));
  }
  CAIRN_ASSIGN_OR_RETURN(std::string target,
                         NormalizeTargetPath(request.target_path));
  CAIRN_ASSIGN_OR_RETURN(Job spec,
                         RestoreSpec(request.backup_id, request.client_id));
  spec.kind = JobKind::kFileRestore;
  spec.source_path = *std::move(source);
  spec.partition = request.partition;
  spec.target = std::move(target);
  spec.requested_by = request.requested_by;
  return Enqueue(spec, audit);
}

StatusOr<Job> JobEngine::Cancel(uint64_t job_id, const AuditEntry* audit) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(Job job, catalog_->GetJob(job_id));
  if (IsFinal(job.state)) {
    return absl::FailedPreconditionError(StrCat(
        "job ", job_id, " has already ended (", JobStateName(job.state), ")"));
  }
  auto it = active_.find(job_id);
  if (it != active_.end()) {
    registry_->Send(it->second.client_id, it->second.session_id,
                    CancelAssignment{job_id});
    active_.erase(it);
  }
  if (job.kind == JobKind::kRestoreBuild && job.state == JobState::kRunning &&
      options_.cancel_server_job) {
    options_.cancel_server_job(job_id);
  }
  CAIRN_RETURN_IF_ERROR(
      catalog_->FinishJob(job_id, JobState::kCancelled, "", audit));
  events_->Notify();
  DispatchLocked(job.client_id);
  return catalog_->GetJob(job_id);
}

StatusOr<uint64_t> JobEngine::AgentConnected(
    const std::string& client_id, std::shared_ptr<AgentSession> session,
    const std::vector<uint64_t>& still_running) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return absl::UnavailableError("the server is shutting down");
  uint64_t session_id = registry_->Attach(client_id, std::move(session));
  for (uint64_t job_id : still_running) {
    auto it = active_.find(job_id);
    if (it != active_.end() && it->second.client_id == client_id) {
      if (it->second.orphaned_since_us != 0) {
        spdlog::info("job {}: agent {} reconnected and goes on with it", job_id,
                     client_id);
      }
      it->second.session_id = session_id;
      it->second.orphaned_since_us = 0;
    }
  }
  // Orphaned jobs the agent did not list are not running any more.
  FailOrphansLocked(&client_id);
  if (Status s = catalog_->TouchClient(client_id); !s.ok()) {
    spdlog::warn("recording that client {} connected: {}", client_id,
                 ToStd(s.message()));
  }
  DispatchLocked(client_id);
  return session_id;
}

void JobEngine::AgentDisconnected(const std::string& client_id,
                                  uint64_t session_id) {
  std::lock_guard<std::mutex> lock(mu_);
  registry_->Detach(client_id, session_id);
  if (shutdown_) return;
  std::vector<uint64_t> orphaned;
  for (const auto& [job_id, a] : active_) {
    if (a.client_id == client_id && a.session_id == session_id) {
      orphaned.push_back(job_id);
    }
  }
  if (options_.reconnect_grace.count() <= 0) {
    for (uint64_t job_id : orphaned) {
      FinishActiveLocked(job_id, JobState::kFailed, kAgentDisconnectedError);
    }
    DispatchLocked(client_id);
    return;
  }
  const int64_t now = Now();
  for (uint64_t job_id : orphaned) {
    ActiveJob& a = active_[job_id];
    a.session_id = 0;
    a.orphaned_since_us = now;
    spdlog::info(
        "job {}: agent {} disconnected; waiting {} ms for it to "
        "reconnect",
        job_id, client_id, options_.reconnect_grace.count());
  }
  if (!orphaned.empty()) orphans_cv_.notify_all();
}

void JobEngine::FailOrphansLocked(const std::string* client) {
  const int64_t grace_us =
      std::chrono::duration_cast<std::chrono::microseconds>(
          options_.reconnect_grace)
          .count();
  const int64_t now = Now();
  std::vector<std::pair<uint64_t, std::string>> expired;
  for (const auto& [job_id, a] : active_) {
    if (a.orphaned_since_us == 0) continue;
    if ((client != nullptr && a.client_id == *client) ||
        now - a.orphaned_since_us >= grace_us) {
      expired.emplace_back(job_id, a.client_id);
    }
  }
  for (const auto& [job_id, client_id] : expired) {
    FinishActiveLocked(job_id, JobState::kFailed, kAgentDisconnectedError);
    if (client == nullptr) DispatchLocked(client_id);
  }
}

void JobEngine::ReapOrphans() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutdown_) {
    bool any = std::any_of(active_.begin(), active_.end(), [](auto& kv) {
      return kv.second.orphaned_since_us != 0;
    });
    if (!any) {
      orphans_cv_.wait(lock);
      continue;
    }
    // Granularity: a tenth of the grace, at most a second.
    auto step = std::min<std::chrono::milliseconds>(
        std::max<std::chrono::milliseconds>(options_.reconnect_grace / 10,
                                            std::chrono::milliseconds(10)),
        std::chrono::seconds(1));
    orphans_cv_.wait_for(lock, step);
    if (!shutdown_) FailOrphansLocked(nullptr);
  }
}

StatusOr<JobEngine::ActiveJob*> JobEngine::ActiveForLocked(
    const std::string& client_id, uint64_t session_id, uint64_t job_id) {
  auto it = active_.find(job_id);
  if (it == active_.end()) {
    return absl::FailedPreconditionError(
        StrCat("job ", job_id, " is not running"));
  }
  if (it->second.client_id != client_id) {
    return absl::PermissionDeniedError(
        StrCat("job ", job_id, " belongs to another client"));
  }
  if (it->second.session_id != session_id) {
    return absl::FailedPreconditionError(
        StrCat("job ", job_id, " runs on another connection of this client"));
  }
  return &it->second;
}

Status JobEngine::ReportProgress(const std::string& client_id,
                                 uint64_t session_id,
                                 const JobProgressReport& report) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(ActiveJob * a,
                         ActiveForLocked(client_id, session_id, report.job_id));
  JobProgress p;
  p.done_bytes = report.done_bytes;
  p.total_bytes = report.total_bytes;
  int64_t elapsed_us = std::max<int64_t>(Now() - a->started_us, 1);
  p.bytes_per_second = static_cast<uint64_t>(
      static_cast<double>(report.done_bytes) * 1e6 / elapsed_us);
  CAIRN_RETURN_IF_ERROR(catalog_->UpdateJobProgress(report.job_id, p));
  events_->Notify();
  return Status();
}

Status JobEngine::ReportResult(const std::string& client_id,
                               uint64_t session_id, const JobOutcome& outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(
      ActiveJob * found,
      ActiveForLocked(client_id, session_id, outcome.job_id));
  const ActiveJob a = *found;
  const uint64_t job_id = outcome.job_id;
  Status result;
  if (!outcome.ok) {
    FinishActiveLocked(job_id, JobState::kFailed,
                       outcome.error.empty()
                           ? "the agent reported a failure without a reason"
                           : outcome.error);
  } else if (a.kind == JobKind::kRestore || a.kind == JobKind::kFileRestore) {
    std::string summary;
    if (a.kind == JobKind::kRestore) {
      // The agent's figures (agent.proto JobResult) as the job's message.
      auto job = catalog_->GetJob(job_id);
      const bool verified = job.ok() && job->verify;
      summary =
          StrCat("wrote ", outcome.chunks_new, " chunks (",
                 outcome.new_stored_bytes, " bytes), skipped ",
                 outcome.chunks_deduplicated, " chunks already in place; ",
                 verified ? StrCat("verified ", outcome.image_size, " bytes")
                          : std::string("not verified"));
    }
    if (outcome.image_size > 0) {
      // The bytes restored, also when the job ended before its first
      // progress report (a restore's progress also counted its verify
      // phase).
      JobProgress p;
      p.done_bytes = p.total_bytes = outcome.image_size;
      p.bytes_per_second =
          static_cast<uint64_t>(static_cast<double>(outcome.image_size) * 1e6 /
                                std::max<int64_t>(Now() - a.started_us, 1));
      if (Status s = catalog_->UpdateJobProgress(job_id, p); !s.ok()) {
        spdlog::warn("job {}: recording its size: {}", job_id,
                     ToStd(s.message()));
      }
    }
    FinishActiveLocked(job_id, JobState::kSucceeded, summary);
  } else {
    std::string backup_id =
        outcome.backup_id.empty() ? a.backup_id : outcome.backup_id;
    if (backup_id != a.backup_id) {
      result = absl::InvalidArgumentError(
          StrCat("job ", job_id, " was to commit backup '", a.backup_id,
                 "', the agent reported '", backup_id, "'"));
    } else if (a.media_id != kEmbeddedMediaId) {
      result = CheckReceiptLocked(a, job_id, outcome);
    } else if (options_.committed_check) {
      result = options_.committed_check(a.media_id, backup_id);
    }
    if (result.ok()) {
      BackupEntry e;
      e.backup_id = backup_id;
      e.client_id = a.client_id;
      e.media_agent_id = a.media_id;
      e.kind =
          a.parent_id.empty() ? BackupKind::kFull : BackupKind::kIncremental;
      e.parent_id = a.parent_id;
      e.manifest_ref = backup_id;
      e.created_us = a.started_us;
      e.image_size = outcome.image_size;
      e.stored_bytes = outcome.new_stored_bytes;
      e.chunk_count = outcome.chunks_new + outcome.chunks_deduplicated;
      e.encrypted = !options_.data_key.empty();
      // The profile current when the backup is recorded (the agent reports
      // one when the job starts).
      if (auto history = catalog_->ListClientProfiles(a.client_id);
          history.ok() && !history->empty()) {
        e.profile_ref = history->back().profile_sha256;
      }
      result = catalog_->CommitBackup(e, job_id);
      if (result.ok()) {
        active_.erase(job_id);
        events_->Notify();
      }
    }
    if (!result.ok()) {
      FinishActiveLocked(
          job_id, JobState::kFailed,
          StrCat("recording the backup failed: ", ToStd(result.message())));
    }
  }
  DispatchLocked(client_id);
  return result;
}

Status JobEngine::CheckReceiptLocked(const ActiveJob& a, uint64_t job_id,
                                     const JobOutcome& outcome) {
  if (outcome.commit_receipt.empty()) {
    return absl::FailedPreconditionError(
        StrCat("the agent forwarded no commit receipt from media agent '",
               a.media_id, "'"));
  }
  CAIRN_ASSIGN_OR_RETURN(MediaAgent media, catalog_->GetMediaAgent(a.media_id));
  if (media.cert_pem.empty()) {
    return absl::FailedPreconditionError(
        StrCat("media agent '", a.media_id,
               "' has no certificate on record to check its receipt"));
  }
  CAIRN_ASSIGN_OR_RETURN(
      CommitReceipt r,
      VerifyCommitReceipt(outcome.commit_receipt, media.cert_pem));
  if (r.media_id != a.media_id || r.client_id != a.client_id ||
      r.job_id != job_id || r.backup_id != a.backup_id ||
      r.image_size != outcome.image_size) {
    return absl::PermissionDeniedError(
        StrCat("the commit receipt (media agent '", r.media_id, "', client '",
               r.client_id, "', job ", r.job_id, ", backup '", r.backup_id,
               "') does not match job ", job_id, " (media agent '", a.media_id,
               "', client '", a.client_id, "', backup '", a.backup_id, "')"));
  }
  return Status();
}

void JobEngine::ClientRevoked(const std::string& client_id) {
  registry_->Disconnect(client_id);
  std::lock_guard<std::mutex> lock(mu_);
  JobFilter filter;
  filter.state = JobState::kQueued;
  filter.client_id = client_id;
  auto queued = catalog_->ListJobs(filter);
  if (!queued.ok()) {
    spdlog::error("listing the queued jobs of revoked client {}: {}", client_id,
                  ToStd(queued.status().message()));
    return;
  }
  for (const Job& job : *queued) {
    if (Status s = catalog_->FinishJob(job.job_id, JobState::kFailed,
                                       "the client was revoked");
        !s.ok()) {
      spdlog::error("failing job {}: {}", job.job_id, ToStd(s.message()));
    }
  }
  events_->Notify();
}

void JobEngine::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  orphans_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  registry_->CloseAll();
}

void JobEngine::FinishActiveLocked(uint64_t job_id, JobState state,
                                   std::string_view error,
                                   const AuditEntry* audit) {
  active_.erase(job_id);
  if (Status s = catalog_->FinishJob(job_id, state, error, audit); !s.ok()) {
    spdlog::error("finishing job {} as {}: {}", job_id, JobStateName(state),
                  ToStd(s.message()));
  }
  events_->Notify();
}

void JobEngine::DispatchLocked(const std::string& client_id) {
  if (shutdown_) return;
  std::optional<uint64_t> session_id = registry_->CurrentSession(client_id);
  if (!session_id) return;
  for (const auto& [job_id, a] : active_) {
    if (a.client_id == client_id) return;  // one job per client at a time
  }
  for (;;) {
    JobFilter filter;
    filter.state = JobState::kQueued;
    filter.client_id = client_id;
    auto queued = catalog_->ListJobs(filter);
    if (!queued.ok()) {
      spdlog::error("listing queued jobs of {}: {}", client_id,
                    ToStd(queued.status().message()));
      return;
    }
    // Restore builds run on the server (RestoreBuilds), not on the client.
    std::erase_if(
        *queued, [](const Job& j) { return j.kind == JobKind::kRestoreBuild; });
    if (queued->empty()) return;
    const Job& job = queued->front();
    Status s = DispatchJobLocked(job, *session_id);
    if (s.ok()) return;
    spdlog::warn("job {} cannot run: {}", job.job_id, ToStd(s.message()));
    if (Status f = catalog_->FinishJob(job.job_id, JobState::kFailed,
                                       ToStd(s.message()));
        !f.ok()) {
      spdlog::error("failing job {}: {}", job.job_id, ToStd(f.message()));
      return;
    }
    events_->Notify();
  }
}

StatusOr<JobEngine::MediaChoice> JobEngine::ChooseMediaLocked(
    const std::string& preferred) {
  if (!preferred.empty()) {
    if (preferred == kEmbeddedMediaId) {
      if (options_.embedded_media) {
        return MediaChoice{kEmbeddedMediaId, options_.embedded_media_address,
                           options_.embedded_media_cert_pem};
      }
    } else {
      auto agent = catalog_->GetMediaAgent(preferred);
      if (agent.ok() && !agent->revoked && !agent->address.empty()) {
        return MediaChoice{agent->media_agent_id, agent->address,
                           agent->cert_pem};
      }
    }
  }
  if (options_.embedded_media) {
    return MediaChoice{kEmbeddedMediaId, options_.embedded_media_address,
                       options_.embedded_media_cert_pem};
  }
  CAIRN_ASSIGN_OR_RETURN(std::vector<MediaAgent> agents,
                         catalog_->ListMediaAgents());
  const MediaAgent* best = nullptr;
  size_t best_load = 0;
  for (const MediaAgent& m : agents) {
    if (m.revoked || m.address.empty() || m.media_agent_id == kEmbeddedMediaId)
      continue;
    size_t load = std::count_if(active_.begin(), active_.end(), [&](auto& kv) {
      return kv.second.media_id == m.media_agent_id;
    });
    if (best == nullptr || load < best_load) {
      best = &m;
      best_load = load;
    }
  }
  if (best == nullptr) {
    return absl::FailedPreconditionError(
        "no media agent is available: enroll one, or run cairn-server with "
        "--embedded-media");
  }
  return MediaChoice{best->media_agent_id, best->address, best->cert_pem};
}

StatusOr<std::string> JobEngine::SignTicketLocked(const Job& job,
                                                  const ActiveJob& active) {
  SessionTicket t;
  t.operation = job.kind == JobKind::kBackup
                    ? SessionTicket::Operation::kBackup
                    : SessionTicket::Operation::kRestore;
  t.client_id = job.client_id;
  t.job_id = job.job_id;
  t.backup_id = active.backup_id;
  t.parent_backup_id = active.parent_id;
  t.media_id = active.media_id;
  t.expires_unix_us =
      Now() +
      std::chrono::duration_cast<std::chrono::microseconds>(options_.ticket_ttl)
          .count();
  if (job.kind == JobKind::kBackup) {
    // The media agent records the backup's file catalogue after the commit;
    // for an encrypted backup it needs the key. Without it (no certificate
    // on record, or not P-256) the backup still runs, uncatalogued.
    auto wrapped = WrapDataKeyLocked(active.media_cert_pem);
    if (wrapped.ok()) {
      t.wrapped_key = *std::move(wrapped);
    } else {
      spdlog::warn("backup {}: no file catalogue key for media agent '{}': {}",
                   active.backup_id, active.media_id,
                   ToStd(wrapped.status().message()));
    }
  }
  return SignTicket(t, options_.ticket_key_pem);
}

StatusOr<std::string> JobEngine::WrapDataKeyLocked(
    const std::string& media_cert_pem) const {
  if (options_.data_key.empty()) return std::string();
  if (media_cert_pem.empty()) {
    return absl::FailedPreconditionError(
        "no certificate is on record for the media agent");
  }
  return WrapKey(options_.data_key, media_cert_pem);
}

StatusOr<JobEngine::MediaChoice> JobEngine::MediaHoldingLocked(
    const BackupEntry& backup) {
  CAIRN_ASSIGN_OR_RETURN(MediaChoice media,
                         ChooseMediaLocked(backup.media_agent_id));
  if (media.media_id != backup.media_agent_id) {
    return absl::FailedPreconditionError(
        StrCat("media agent '", backup.media_agent_id, "' holding backup '",
               backup.backup_id, "' is not available"));
  }
  return media;
}

StatusOr<std::string> JobEngine::SignBrowseTicketLocked(
    const std::string& backup_id, const MediaChoice& media,
    const std::string& client_id, uint64_t job_id, int64_t expires_us) const {
  SessionTicket t;
  t.operation = SessionTicket::Operation::kBrowse;
  t.client_id = client_id;
  t.job_id = job_id;
  t.backup_id = backup_id;
  t.media_id = media.media_id;
  t.expires_unix_us = expires_us;
  CAIRN_ASSIGN_OR_RETURN(t.wrapped_key, WrapDataKeyLocked(media.cert_pem));
  return SignTicket(t, options_.ticket_key_pem);
}

StatusOr<BrowseGrant> JobEngine::GrantBrowse(const std::string& backup_id,
                                             const std::string& caller,
                                             std::chrono::seconds ttl) {
  CAIRN_ASSIGN_OR_RETURN(BackupEntry backup, catalog_->GetBackup(backup_id));
  if (backup.status != BackupStatus::kAvailable) {
    return absl::FailedPreconditionError(
        StrCat("backup '", backup_id, "' is ", BackupStatusName(backup.status),
               "; only an available backup can be browsed"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  CAIRN_ASSIGN_OR_RETURN(MediaChoice media, MediaHoldingLocked(backup));
  const int64_t expires_us =
      Now() +
      std::chrono::duration_cast<std::chrono::microseconds>(ttl).count();
  CAIRN_ASSIGN_OR_RETURN(std::string ticket,
                         SignBrowseTicketLocked(backup_id, media, caller,
                                                /*job_id=*/0, expires_us));
  BrowseGrant g;
  g.backup_id = backup_id;
  g.client_id = backup.client_id;
  g.media_id = media.media_id;
  g.media_address = media.address;
  g.ticket = std::move(ticket);
  g.expires_unix_us = expires_us;
  return g;
}

Status JobEngine::DispatchJobLocked(const Job& job, uint64_t session_id) {
  ActiveJob a;
  a.kind = job.kind;
  a.client_id = job.client_id;
  a.session_id = session_id;
  a.started_us = Now();
  MediaChoice media;
  if (job.kind == JobKind::kBackup) {
    std::string preferred;
    if (job.incremental) {
      auto parent = catalog_->LatestBackup(job.client_id);
      if (parent.ok()) {
        a.parent_id = parent->backup_id;
        preferred = parent->media_agent_id;
      } else if (!absl::IsNotFound(parent.status())) {
        return parent.status();
      }
    }
    CAIRN_ASSIGN_OR_RETURN(media, ChooseMediaLocked(preferred));
    if (media.media_id != preferred) a.parent_id.clear();  // full elsewhere
    a.backup_id = NewBackupIdLocked(job.client_id, a.started_us);
  } else {
    CAIRN_ASSIGN_OR_RETURN(BackupEntry backup,
                           catalog_->GetBackup(job.backup_id));
    CAIRN_ASSIGN_OR_RETURN(media, MediaHoldingLocked(backup));
    a.backup_id = backup.backup_id;
  }
  a.media_id = media.media_id;
  a.media_cert_pem = media.cert_pem;
  MediaAssignment m;
  m.address = media.address;
  if (job.kind == JobKind::kFileRestore) {
    // The agent reads files through BrowseService as the job's client; the
    // media agent decrypts, so the assignment carries no data key.
    const int64_t expires_us =
        a.started_us + std::chrono::duration_cast<std::chrono::microseconds>(
                           options_.ticket_ttl)
                           .count();
    CAIRN_ASSIGN_OR_RETURN(
        m.ticket, SignBrowseTicketLocked(a.backup_id, media, job.client_id,
                                         job.job_id, expires_us));
  } else {
    CAIRN_ASSIGN_OR_RETURN(m.ticket, SignTicketLocked(job, a));
    m.data_key = options_.data_key;
  }

  CAIRN_RETURN_IF_ERROR(catalog_->StartJob(
      job.job_id, a.media_id,
      job.kind == JobKind::kBackup ? a.backup_id : std::string()));
  AgentCommand command;
  if (job.kind == JobKind::kBackup) {
    BackupAssignment b;
    b.job_id = job.job_id;
    b.source_path = job.target;
    b.backup_id = a.backup_id;
    b.parent_backup_id = a.parent_id;
    b.chunk_size = options_.chunk_size;
    b.zstd_level = options_.zstd_level;
    b.media = std::move(m);
    command = std::move(b);
  } else if (job.kind == JobKind::kFileRestore) {
    FileRestoreAssignment f;
    f.job_id = job.job_id;
    f.backup_id = a.backup_id;
    f.partition = job.partition;
    f.source_path = job.source_path;
    f.target_path = job.target;
    f.media = std::move(m);
    command = std::move(f);
  } else {
    RestoreAssignment r;
    r.job_id = job.job_id;
    r.backup_id = a.backup_id;
    r.target_path = job.target;
    r.media = std::move(m);
    r.resume = job.resume;
    r.verify = job.verify;
    r.reboot = job.reboot;
    command = std::move(r);
  }
  active_[job.job_id] = a;
  spdlog::info("job {} ({} {}) dispatched to {} via media agent {}", job.job_id,
               JobKindName(job.kind), a.backup_id, job.client_id, a.media_id);
  if (!registry_->Send(job.client_id, session_id, std::move(command))) {
    FinishActiveLocked(job.job_id, JobState::kFailed, kAgentDisconnectedError);
    return Status();
  }
  events_->Notify();
  return Status();
}

}  // namespace cairn
