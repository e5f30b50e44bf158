#include "server/restore_builds.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <utility>

#include "common/coding.h"
#include "common/crypto.h"
#include "common/data_key.h"
#include "common/strings.h"
#include "media_agent/repository.h"
#include "media_agent/restore_builder.h"
#include "server/customization_plan.h"
#include "server/job_engine.h"
#include "server/profile_diff.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowUnixUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string SerializeDeterministic(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace

std::string BuildKey(const v1::CustomizationPlan& plan) {
  v1::CustomizationPlan canonical = plan;
  canonical.clear_target();
  canonical.clear_steps();
  crypto::Digest d = crypto::Sha256(SerializeDeterministic(canonical));
  std::string hex = HexEncode(
      std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
  return StrCat(plan.target_profile_sha256(), "/", hex.substr(0, 16));
}

RestoreBuilds::RestoreBuilds(Catalog* catalog, const ClientProfiles* profiles,
                             JobEvents* events, RestoreBuildsOptions options)
    : catalog_(catalog),
      profiles_(profiles),
      events_(events),
      options_(std::move(options)) {
  // Builds queued by a previous server: their plans were in its memory.
  JobFilter filter;
  filter.state = JobState::kQueued;
  auto queued = catalog_->ListJobs(filter);
  if (!queued.ok()) {
    spdlog::error("listing queued jobs: {}", ToStd(queued.status().message()));
  } else {
    for (const Job& job : *queued) {
      if (job.kind != JobKind::kRestoreBuild) continue;
      Status s = catalog_->FinishJob(
          job.job_id, JobState::kFailed,
          "the server restarted before the restore build ran; start it again");
      if (!s.ok()) {
        spdlog::error("failing restore build {}: {}", job.job_id,
                      ToStd(s.message()));
      }
    }
  }
  worker_ = std::thread([this] { Run(); });
}

RestoreBuilds::~RestoreBuilds() { Shutdown(); }

void RestoreBuilds::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ && !worker_.joinable()) return;
    shutdown_ = true;
    cancel_running_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

StatusOr<RestorePlan> RestoreBuilds::Plan(const RestoreTargetSpec& spec) const {
  if (spec.source_backup_id.empty()) {
    return absl::InvalidArgumentError("name the source backup");
  }
  if (spec.target_client_id.empty() == spec.target_profile_zstd.empty()) {
    return absl::InvalidArgumentError(
        "name either a target client or supply a target profile");
  }
  CAIRN_ASSIGN_OR_RETURN(ClientProfiles::Found source,
                         profiles_->ForBackup(spec.source_backup_id));
  StatusOr<ClientProfiles::Found> target =
      spec.target_client_id.empty()
          ? ClientProfiles::Decode(spec.target_profile_zstd,
                                   spec.target_raw_size,
                                   "the supplied target profile")
          : profiles_->Latest(spec.target_client_id);
  CAIRN_RETURN_IF_ERROR(target.status());
  ProfileDiffOptions diff_options;
  diff_options.conflict_choice = spec.conflict_choice;
  for (const std::string& pair : spec.nic_map) {
    size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == pair.size()) {
      return absl::InvalidArgumentError(StrCat(
          "NIC mapping '", pair.substr(0, 80), "' is not SOURCE=TARGET"));
    }
    diff_options.nic_map.emplace_back(pair.substr(0, eq), pair.substr(eq + 1));
  }
  RestorePlan out;
  CAIRN_ASSIGN_OR_RETURN(
      out.diff, ProfileDiff(source.profile, target->profile, diff_options));
  out.source_profile_sha256 = source.sha256_hex;
  out.target_profile_sha256 = target->sha256_hex;

  CustomizationPlanOptions co;
  co.source_backup_id = spec.source_backup_id;
  co.target = spec.target_client_id.empty()
                  ? StrCat("profile:", target->sha256_hex)
                  : StrCat("client:", spec.target_client_id);
  co.source_profile_sha256 = source.sha256_hex;
  co.target_profile_sha256 = target->sha256_hex;
  co.drop_guest_tools = spec.drop_guest_tools;
  std::optional<ClientProfiles::Found> template_profile;
  if (!spec.template_name.empty()) {
    CAIRN_ASSIGN_OR_RETURN(BootTemplate t,
                           catalog_->GetTemplate(spec.template_name));
    CAIRN_ASSIGN_OR_RETURN(BackupEntry image, catalog_->GetBackup(t.image_id));
    CAIRN_ASSIGN_OR_RETURN(BackupEntry backup,
                           catalog_->GetBackup(spec.source_backup_id));
    if (image.media_agent_id != backup.media_agent_id) {
      return absl::FailedPreconditionError(StrCat(
          "template '", t.name, "' is on media agent '", image.media_agent_id,
          "', backup '", backup.backup_id, "' on '", backup.media_agent_id,
          "': a build reads both from one store"));
    }
    CAIRN_ASSIGN_OR_RETURN(template_profile, profiles_->ForBackup(t.image_id));
    co.template_profile = &template_profile->profile;
    co.template_name = t.name;
    co.template_image_id = t.image_id;
    co.template_profile_sha256 = template_profile->sha256_hex;
  }
  CAIRN_ASSIGN_OR_RETURN(
      out.plan,
      PlanCustomization(source.profile, target->profile, out.diff, co));
  return out;
}

StatusOr<RestoreBuildStart> RestoreBuilds::Start(
    const RestoreTargetSpec& spec, bool rebuild,
    const std::string& requested_by, const AuditEntry* audit) {
  RestoreBuildStart out;
  CAIRN_ASSIGN_OR_RETURN(out.plan, Plan(spec));
  const v1::CustomizationPlan& plan = out.plan.plan;
  if (!plan.blockers().empty()) {
    std::string list;
    for (const std::string& b : plan.blockers()) list += StrCat("\n  - ", b);
    return absl::FailedPreconditionError(
        StrCat("the restore plan has blockers:", list));
  }
  CAIRN_ASSIGN_OR_RETURN(BackupEntry source,
                         catalog_->GetBackup(spec.source_backup_id));
  if (source.status != BackupStatus::kAvailable) {
    return absl::FailedPreconditionError(
        StrCat("backup '", source.backup_id, "' is ",
               BackupStatusName(source.status)));
  }
  const std::string key = BuildKey(plan);
  if (!rebuild) {
    auto cached = catalog_->FindCustomizedImage(source.backup_id, key);
    if (cached.ok() && cached->status == BackupStatus::kAvailable) {
      out.cached = *std::move(cached);
      return out;
    }
    if (!cached.ok() && !absl::IsNotFound(cached.status())) {
      return cached.status();
    }
  }
  if (source.media_agent_id != kEmbeddedMediaId ||
      options_.repository == nullptr) {
    return absl::UnimplementedError(StrCat(
        "backup '", source.backup_id, "' is on media agent '",
        source.media_agent_id,
        "'; this server builds only on its embedded media agent. Run "
        "`cairn-media restore build` on that media agent's host with the "
        "plan from `cairnctl restore plan --out`"));
  }
  Job spec_job;
  spec_job.kind = JobKind::kRestoreBuild;
  spec_job.client_id = source.client_id;
  spec_job.media_agent_id = source.media_agent_id;
  spec_job.backup_id = source.backup_id;
  spec_job.target = plan.target();
  spec_job.requested_by = requested_by;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) {
      return absl::UnavailableError("the server is shutting down");
    }
    CAIRN_ASSIGN_OR_RETURN(Job job, catalog_->CreateJob(spec_job, audit));
    Queued q{job.job_id, plan, source};
    q.plan.set_source_backup_id(source.backup_id);
    queue_.push_back(std::move(q));
    out.job = std::move(job);
  }
  cv_.notify_all();
  events_->Notify();
  return out;
}

bool RestoreBuilds::CancelRunning(uint64_t job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_job_ != job_id || job_id == 0) return false;
  cancel_running_ = true;
  return true;
}

void RestoreBuilds::Run() {
  for (;;) {
    Queued q;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return shutdown_ || !queue_.empty(); });
      if (shutdown_) return;
      q = std::move(queue_.front());
      queue_.pop_front();
      running_job_ = q.job_id;
      cancel_running_ = false;
    }
    Build(q);
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_job_ = 0;
    }
  }
}

void RestoreBuilds::Build(const Queued& q) {
  auto job = catalog_->GetJob(q.job_id);
  if (!job.ok() || job->state != JobState::kQueued) return;  // cancelled
  if (Status s = catalog_->StartJob(q.job_id); !s.ok()) {
    spdlog::warn("restore build {} cannot start: {}", q.job_id,
                 ToStd(s.message()));
    return;
  }
  events_->Notify();
  spdlog::info("restore build {}: backup {} for {}", q.job_id,
               q.source.backup_id, q.plan.target());
  Status s = BuildAndRecord(q);
  if (s.ok()) {
    spdlog::info("restore build {} succeeded", q.job_id);
  } else {
    spdlog::warn("restore build {} failed: {}", q.job_id, ToStd(s.message()));
    auto now = catalog_->GetJob(q.job_id);
    if (now.ok() && now->state == JobState::kRunning) {
      Status f =
          catalog_->FinishJob(q.job_id, JobState::kFailed, ToStd(s.message()));
      if (!f.ok()) {
        spdlog::error("failing restore build {}: {}", q.job_id,
                      ToStd(f.message()));
      }
    }
  }
  events_->Notify();
}

Status RestoreBuilds::BuildAndRecord(const Queued& q) {
  std::optional<DataKey> key;
  if (!options_.data_key.empty()) {
    CAIRN_ASSIGN_OR_RETURN(key, DataKey::FromSecret(options_.data_key));
  }
  RestoreBuildOptions bo;
  bo.backup_id = q.source.backup_id;
  bo.new_id = StrCat(q.source.backup_id, "-c", q.job_id);
  bo.key = key ? &*key : nullptr;
  bo.plan = q.plan;
  bo.work_parent = options_.work_dir;
  bo.cancelled = [this] { return cancel_running_.load(); };
  auto last = Clock::now() - std::chrono::seconds(10);
  auto commit_start = Clock::now();
  std::string last_phase;
  bo.progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    auto now = Clock::now();
    const bool new_phase = phase != last_phase;
    if (!new_phase && now - last < std::chrono::seconds(1)) return;
    if (new_phase && phase == "commit") commit_start = now;
    last = now;
    last_phase = std::string(phase);
    JobProgress p;
    p.phase = last_phase;
    p.done_bytes = done;
    p.total_bytes = total;
    double secs = std::chrono::duration<double>(now - commit_start).count();
    if (phase == "commit" && secs > 0.5) {
      p.bytes_per_second = static_cast<uint64_t>(done / secs);
    }
    if (Status s = catalog_->UpdateJobProgress(q.job_id, p); s.ok()) {
      events_->Notify();
    }
  };
  CAIRN_ASSIGN_OR_RETURN(RestoreBuildResult result,
                         BuildCustomizedImage(*options_.repository, bo));

  BackupEntry e;
  e.backup_id = bo.new_id;
  e.client_id = q.source.client_id;
  e.media_agent_id = q.source.media_agent_id;
  e.kind = BackupKind::kCustomized;
  e.parent_id = q.source.backup_id;
  e.manifest_ref = bo.new_id;
  e.created_us = result.manifest.created_unix_us != 0
                     ? result.manifest.created_unix_us
                     : NowUnixUs();
  e.image_size = result.stats.image_size;
  e.stored_bytes = result.stats.new_stored_bytes;
  e.chunk_count = result.stats.chunks;
  e.profile_ref = q.plan.target_profile_sha256();
  e.encrypted = result.manifest.encrypted();
  e.build_key = BuildKey(q.plan);
  Status committed = catalog_->CommitBackup(e, q.job_id);
  if (!committed.ok()) {
    // Cancelled while it ran, or refused: the store must not keep an image
    // the catalog does not know.
    if (Status d = options_.repository->manifests().Delete(bo.new_id);
        !d.ok()) {
      spdlog::error("restore build {}: removing unrecorded image {}: {}",
                    q.job_id, bo.new_id, ToStd(d.message()));
    }
    return committed;
  }
  return Status();
}

}  // namespace cairn
