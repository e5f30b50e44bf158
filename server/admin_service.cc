#include "server/admin_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/peer_identity.h"
#include "common/sparse_file.h"
#include "common/strings.h"
#include "server/customization_plan.h"
#include "server/profile_diff.h"
#include "server/request_size.h"
#include "server/restore_builds.h"

namespace cairn {
namespace {

constexpr std::initializer_list<Role> kReaders = {
    Role::kAdmin, Role::kOperator, Role::kHelpdesk, Role::kAuditor};

AuditEntry Audit(const PeerIdentity& peer, std::string_view action,
                 std::string_view target, std::string details = {}) {
  AuditEntry e;
  e.actor = peer.identity;
  e.role = peer.role;
  e.action = std::string(action);
  e.target = std::string(target);
  e.result = "ok";
  e.details = std::move(details);
  return e;
}

void FillJob(const Job& j, v1::JobInfo* out) {
  out->set_job_id(j.job_id);
  out->set_kind(std::string(JobKindName(j.kind)));
  out->set_client_id(j.client_id);
  out->set_state(std::string(JobStateName(j.state)));
  out->set_done_bytes(j.progress.done_bytes);
  out->set_total_bytes(j.progress.total_bytes);
  out->set_bytes_per_second(static_cast<double>(j.progress.bytes_per_second));
  out->set_error(j.error);
  out->set_backup_id(j.backup_id);
  out->set_created_unix_us(j.created_us);
  out->set_finished_unix_us(j.finished_us);
  out->set_phase(j.progress.phase);
  out->set_result_backup_id(j.result_backup_id);
}

void FillBackup(const BackupEntry& b, v1::BackupInfo* out) {
  out->set_backup_id(b.backup_id);
  out->set_client_id(b.client_id);
  out->set_kind(std::string(BackupKindName(b.kind)));
  out->set_parent_id(b.parent_id);
  out->set_created_unix_us(b.created_us);
  out->set_image_size(b.image_size);
  out->set_new_stored_bytes(b.stored_bytes);
  out->set_media_id(b.media_agent_id);
  out->set_encrypted(b.encrypted);
  out->set_status(std::string(BackupStatusName(b.status)));
}

void FillTemplate(const BootTemplate& t, v1::TemplateInfo* out) {
  out->set_name(t.name);
  out->set_image_id(t.image_id);
  out->set_description(t.description);
  out->set_kernel_version(t.kernel_version);
  out->set_os_name(t.os_name);
  out->set_profile_sha256(t.profile_sha256);
  out->set_image_size(t.image_size);
  out->set_created_unix_us(t.created_us);
  out->set_created_by(t.created_by);
}

// The restore target of a DiffProfiles or StartRestoreBuild request.
template <typename Request>
RestoreTargetSpec TargetSpec(const Request& req) {
  RestoreTargetSpec spec;
  spec.source_backup_id = req.source_backup_id();
  spec.target_client_id = req.target_client_id();
  spec.target_profile_zstd = req.target_profile_zstd();
  spec.target_raw_size = req.target_raw_size();
  spec.nic_map.assign(req.nic_map().begin(), req.nic_map().end());
  spec.conflict_choice = req.conflict_choice();
  spec.drop_guest_tools = req.drop_guest_tools();
  spec.template_name = req.template_name();
  return spec;
}

StatusOr<JobState> ParseJobState(std::string_view name) {
  for (JobState s :
       {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
        JobState::kFailed, JobState::kCancelled}) {
    if (JobStateName(s) == name) return s;
  }
  return absl::InvalidArgumentError(
      StrCat("unknown job state '", name.substr(0, 64),
             "': queued, running, succeeded, failed or cancelled"));
}

}  // namespace

AdminHandler::AdminHandler(Catalog* catalog, EnrollmentService* enrollment,
                           JobEngine* engine, AgentRegistry* registry,
                           const JobEvents* events,
                           const PeerAuthorizer* authorizer,
                           const ClientProfiles* profiles,
                           RestoreBuilds* builds, BootTemplates* templates,
                           const ImageExports* exports)
    : catalog_(catalog),
      enrollment_(enrollment),
      engine_(engine),
      registry_(registry),
      events_(events),
      authorizer_(authorizer),
      profiles_(profiles),
      builds_(builds),
      templates_(templates),
      exports_(exports) {}

StatusOr<PeerIdentity> AdminHandler::Authorize(
    grpc::ServerContext* ctx, const google::protobuf::Message* request,
    std::initializer_list<Role> roles, std::string_view what,
    std::string_view action, std::string_view target) {
  CAIRN_ASSIGN_OR_RETURN(PeerIdentity peer, PeerIdentityFromContext(*ctx));
  Status s = CheckControlRequestSize(*request, what);
  if (s.ok()) s = RequireRole(peer, roles, what);
  if (s.ok()) s = authorizer_->CheckActive(peer);
  if (!s.ok()) {
    spdlog::warn("{} refused for {} '{}': {}", what, RoleName(peer.role),
                 peer.identity, ToStd(s.message()));
    if (!action.empty()) {
      AuditEntry e = Audit(peer, action, target);
      e.result = StrCat("denied: ", ToStd(s.message()));
      if (auto a = catalog_->AppendAudit(e); !a.ok()) {
        spdlog::error("audit of a refused {}: {}", what,
                      ToStd(a.status().message()));
      }
    }
    return s;
  }
  return peer;
}

void AdminHandler::FillClient(const Client& c, v1::ClientInfo* out) const {
  out->set_client_id(c.client_id);
  out->set_hostname(c.display_name);
  out->set_enrolled_unix_us(c.enrolled_us);
  out->set_last_seen_unix_us(
      std::max(c.last_seen_us, registry_->LastSeen(c.client_id)));
  out->set_connected(registry_->IsConnected(c.client_id));
  out->set_revoked(c.revoked);
}

grpc::Status AdminHandler::CreateToken(grpc::ServerContext* ctx,
                                       const v1::CreateTokenRequest* req,
                                       v1::CreateTokenResponse* resp) {
  auto peer = Authorize(ctx, req, {Role::kAdmin}, "Admin.CreateToken",
                        "token.create", "token");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  Role role;
  if (req->role() == v1::ROLE_AGENT) {
    role = Role::kAgent;
  } else if (req->role() == v1::ROLE_MEDIA) {
    role = Role::kMedia;
  } else {
    return ToGrpcStatus(
        absl::InvalidArgumentError("tokens are for ROLE_AGENT or ROLE_MEDIA"));
  }
  std::chrono::seconds ttl = req->ttl_seconds() == 0
                                 ? kDefaultTokenTtl
                                 : std::chrono::seconds(req->ttl_seconds());
  AuditEntry audit =
      Audit(*peer, "token.create", StrCat("token/", RoleName(role)),
            StrCat("ttl ", ttl.count(), " s"));
  auto token = enrollment_->CreateToken(role, ttl, peer->identity, &audit);
  if (!token.ok()) return ToGrpcStatus(token.status());
  resp->set_token(token->issued.token);
  resp->set_expires_unix_us(token->issued.record.expires_us);
  resp->set_ca_fingerprint(token->ca_fingerprint);
  return grpc::Status::OK;
}

grpc::Status AdminHandler::ListClients(grpc::ServerContext* ctx,
                                       const v1::ListClientsRequest* req,
                                       v1::ListClientsResponse* resp) {
  auto peer = Authorize(ctx, req, kReaders, "Admin.ListClients");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  auto clients = catalog_->ListClients();
  if (!clients.ok()) return ToGrpcStatus(clients.status());
  for (const Client& c : *clients) FillClient(c, resp->add_clients());
  return grpc::Status::OK;
}

grpc::Status AdminHandler::GetClient(grpc::ServerContext* ctx,
                                     const v1::GetClientRequest* req,
                                     v1::ClientInfo* resp) {
  auto peer = Authorize(ctx, req, kReaders, "Admin.GetClient");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  auto client = catalog_->GetClient(req->client_id());
  if (!client.ok()) return ToGrpcStatus(client.status());
  FillClient(*client, resp);
  return grpc::Status::OK;
}

grpc::Status AdminHandler::RevokeClient(grpc::ServerContext* ctx,
                                        const v1::RevokeClientRequest* req,
                                        v1::RevokeClientResponse*) {
  std::string target = StrCat("client/", req->client_id().substr(0, 128));
  auto peer = Authorize(ctx, req, {Role::kAdmin}, "Admin.RevokeClient",
                        "client.revoke", target);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  AuditEntry audit = Audit(*peer, "client.revoke", target);
  Status s = catalog_->RevokeClient(
      req->client_id(), StrCat("revoked by ", peer->identity), &audit);
  if (!s.ok()) return ToGrpcStatus(s);
  engine_->ClientRevoked(req->client_id());
  return grpc::Status::OK;
}

grpc::Status AdminHandler::StartBackup(grpc::ServerContext* ctx,
                                       const v1::StartBackupRequest* req,
                                       v1::JobInfo* resp) {
  std::string target = StrCat("client/", req->client_id().substr(0, 128));
  auto peer = Authorize(ctx, req, {Role::kAdmin, Role::kOperator},
                        "Admin.StartBackup", "backup.start", target);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  BackupJobRequest r;
  r.client_id = req->client_id();
  r.source_path = req->source_path();
  r.incremental = req->incremental();
  r.requested_by = peer->identity;
  AuditEntry audit = Audit(*peer, "backup.start", target,
                           StrCat(req->incremental() ? "incremental" : "full",
                                  " of ", req->source_path().substr(0, 256)));
  auto job = engine_->StartBackup(r, &audit);
  if (!job.ok()) return ToGrpcStatus(job.status());
  FillJob(*job, resp);
  return grpc::Status::OK;
}

grpc::Status AdminHandler::ListBackups(grpc::ServerContext* ctx,
                                       const v1::ListBackupsRequest* req,
                                       v1::ListBackupsResponse* resp) {
  auto peer = Authorize(ctx, req, kReaders, "Admin.ListBackups");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  std::vector<BackupEntry> all;
  if (!req->client_id().empty()) {
    auto backups = catalog_->ListBackups(req->client_id());
    if (!backups.ok()) return ToGrpcStatus(backups.status());
    all = *std::move(backups);
  } else {
    auto clients = catalog_->ListClients();
    if (!clients.ok()) return ToGrpcStatus(clients.status());
    for (const Client& c : *clients) {
      auto backups = catalog_->ListBackups(c.client_id);
      if (!backups.ok()) return ToGrpcStatus(backups.status());
      all.insert(all.end(), backups->begin(), backups->end());
    }
    std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
      return a.created_us > b.created_us;
    });
  }
  for (const BackupEntry& b : all) FillBackup(b, resp->add_backups());
  return grpc::Status::OK;
}

grpc::Status AdminHandler::GetBackup(grpc::ServerContext* ctx,
                                     const v1::GetBackupRequest* req,
                                     v1::BackupInfo* resp) {
  auto peer = Authorize(ctx, req, kReaders, "Admin.GetBackup");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  auto backup = catalog_->GetBackup(req->backup_id());
  if (!backup.ok()) return ToGrpcStatus(backup.status());
  FillBackup(*backup, resp);
  return grpc::Status::OK;
}

grpc::Status AdminHandler::StartRestore(grpc::ServerContext* ctx,
                                        const v1::StartRestoreRequest* req,
                                        v1::JobInfo* resp) {
  std::string target = StrCat("backup/", req->backup_id().substr(0, 128));
  auto peer =
      Authorize(ctx, req, {Role::kAdmin, Role::kOperator, Role::kHelpdesk},
                "Admin.StartRestore", "restore.start", target);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  RestoreJobRequest r;
  r.backup_id = req->backup_id();
  r.client_id = req->client_id();
  r.target_path = req->target_path();
  r.resume = req->resume();
  r.verify = !req->no_verify();
  r.reboot = req->reboot();
  r.requested_by = peer->identity;
  AuditEntry audit = Audit(
      *peer, "restore.start", target,
      StrCat(
          "to ", req->client_id().empty() ? "its own client" : req->client_id(),
          ":", req->target_path().substr(0, 256),
          req->resume() ? " resume" : "", req->no_verify() ? " no-verify" : "",
          req->reboot() ? " reboot" : ""));
  auto job = engine_->StartRestore(r, &audit);
  if (!job.ok()) return ToGrpcStatus(job.status());
  FillJob(*job, resp);
  return grpc::Status::OK;
}

grpc::Status AdminHandler::StartFileRestore(
    grpc::ServerContext* ctx, const v1::StartFileRestoreRequest* req,
    v1::JobInfo* resp) {
  std::string target = StrCat("backup/", req->backup_id().substr(0, 128));
  auto peer =
      Authorize(ctx, req, {Role::kAdmin, Role::kOperator, Role::kHelpdesk},
                "Admin.StartFileRestore", "file-restore.start", target);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  FileRestoreJobRequest r;
  r.backup_id = req->backup_id();
  if (req->has_partition()) r.partition = req->partition();
  r.source_path = req->source_path();
  r.client_id = req->client_id();
  r.target_path = req->target_path();
  r.requested_by = peer->identity;
  AuditEntry audit = Audit(
      *peer, "file-restore.start", target,
      StrCat(req->has_partition() ? StrCat("partition ", req->partition(), " ")
                                  : std::string(),
             req->source_path().substr(0, 256), " to ",
             req->client_id().empty() ? "its own client" : req->client_id(),
             ":", req->target_path().substr(0, 256)));
  auto job = engine_->StartFileRestore(r, &audit);
  if (!job.ok()) return ToGrpcStatus(job.status());
  FillJob(*job, resp);
  return grpc::Status::OK;
}

grpc::Status AdminHandler::ListJobs(grpc::ServerContext* ctx,
                                    const v1::ListJobsRequest* req,
                                    v1::ListJobsResponse* resp) {
  auto peer = Authorize(ctx, req, kReaders, "Admin.ListJobs");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  JobFilter filter;
  if (!req->client_id().empty()) filter.client_id = req->client_id();
  if (!req->state().empty()) {
    auto state = ParseJobState(req->state());
    if (!state.ok()) return ToGrpcStatus(state.status());
    filter.state = *state;
  }
  auto jobs = catalog_->ListJobs(filter);
  if (!jobs.ok()) return ToGrpcStatus(jobs.status());
  for (const Job& j : *jobs) FillJob(j, resp->add_jobs());
  return grpc::Status::OK;
}

grpc::Status AdminHandler::WatchJob(grpc::ServerContext* ctx,
                                    const v1::GetJobRequest* req,
                                    grpc::ServerWriter<v1::JobInfo>* writer) {
  auto peer = Authorize(ctx, req, kReaders, "Admin.WatchJob");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  // How often a waiting watcher checks whether its caller went away.
  constexpr auto kCancelCheck = std::chrono::milliseconds(250);
  uint64_t version = events_->Version();
  auto job = catalog_->GetJob(req->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  v1::JobInfo last;
  FillJob(*job, &last);
  if (!writer->Write(last)) return grpc::Status::CANCELLED;
  while (!IsFinal(job->state)) {
    version = events_->WaitForChange(
        version, std::chrono::steady_clock::now() + kCancelCheck);
    if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
    if (events_->IsShutdown()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the server is shutting down");
    }
    job = catalog_->GetJob(req->job_id());
    if (!job.ok()) return ToGrpcStatus(job.status());
    v1::JobInfo info;
    FillJob(*job, &info);
    if (info.SerializeAsString() == last.SerializeAsString()) continue;
    last = info;
    if (!writer->Write(last)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

grpc::Status AdminHandler::CancelJob(grpc::ServerContext* ctx,
                                     const v1::CancelJobRequest* req,
                                     v1::JobInfo* resp) {
  std::string target = StrCat("job/", req->job_id());
  auto peer = Authorize(ctx, req, {Role::kAdmin, Role::kOperator},
                        "Admin.CancelJob", "job.cancel", target);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  AuditEntry audit = Audit(*peer, "job.cancel", target);
  auto job = engine_->Cancel(req->job_id(), &audit);
  if (!job.ok()) return ToGrpcStatus(job.status());
  FillJob(*job, resp);
  return grpc::Status::OK;
}

grpc::Status AdminHandler::GetProfile(grpc::ServerContext* ctx,
                                      const v1::GetProfileRequest* req,
                                      v1::ProfileInfo* resp) {
  auto peer = Authorize(ctx, req, kReaders, "Admin.GetProfile");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  if (req->client_id().empty() == req->backup_id().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        "name either a client (its latest profile) or a backup"));
  }
  auto found = req->backup_id().empty()
                   ? profiles_->Latest(req->client_id())
                   : profiles_->ForBackup(req->backup_id());
  if (!found.ok()) return ToGrpcStatus(found.status());
  resp->set_client_id(found->client_id);
  resp->set_profile_sha256(found->sha256_hex);
  resp->set_reported_unix_us(found->reported_us);
  resp->set_profile_zstd(std::move(found->profile_zstd));
  resp->set_raw_size(found->raw_size);
  return grpc::Status::OK;
}

grpc::Status AdminHandler::RefreshProfile(grpc::ServerContext* ctx,
                                          const v1::RefreshProfileRequest* req,
                                          v1::RefreshProfileResponse*) {
  auto peer =
      Authorize(ctx, req, {Role::kAdmin, Role::kOperator, Role::kHelpdesk},
                "Admin.RefreshProfile");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  auto client = catalog_->GetClient(req->client_id());
  if (!client.ok()) return ToGrpcStatus(client.status());
  if (!registry_->Send(client->client_id, 0, ProfileRequestCommand{})) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        StrCat("client '", client->client_id,
               "' is not connected; its agent reports a profile when it "
               "connects")));
  }
  return grpc::Status::OK;
}

grpc::Status AdminHandler::DiffProfiles(grpc::ServerContext* ctx,
                                        const v1::DiffProfilesRequest* req,
                                        v1::DiffProfilesResponse* resp) {
  auto peer =
      Authorize(ctx, req, {Role::kAdmin, Role::kOperator, Role::kHelpdesk},
                "Admin.DiffProfiles");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  auto planned = builds_->Plan(TargetSpec(*req));
  if (!planned.ok()) return ToGrpcStatus(planned.status());
  auto json = ProfileDiffToJson(planned->diff);
  if (!json.ok()) return ToGrpcStatus(json.status());
  resp->set_text(RenderProfileDiffText(planned->diff));
  resp->set_json(*json);
  resp->set_source_profile_sha256(planned->source_profile_sha256);
  resp->set_target_profile_sha256(planned->target_profile_sha256);
  if (req->restore_plan()) {
    auto build_json = CustomizationPlanToJson(planned->plan);
    if (!build_json.ok()) return ToGrpcStatus(build_json.status());
    resp->set_restore_plan_text(RenderCustomizationPlanText(planned->plan));
    resp->set_restore_plan_json(*build_json);
  }
  return grpc::Status::OK;
}

grpc::Status AdminHandler::StartRestoreBuild(
    grpc::ServerContext* ctx, const v1::StartRestoreBuildRequest* req,
    v1::StartRestoreBuildResponse* resp) {
  const std::string target =
      StrCat("backup/", req->source_backup_id().substr(0, 128));
  auto peer =
      Authorize(ctx, req, {Role::kAdmin, Role::kOperator, Role::kHelpdesk},
                "Admin.StartRestoreBuild", "restore.build", target);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  AuditEntry audit = Audit(
      *peer, "restore.build", target,
      StrCat("for ",
             req->target_client_id().empty()
                 ? std::string("a supplied profile")
                 : StrCat("client ", req->target_client_id().substr(0, 128)),
             req->template_name().empty()
                 ? ""
                 : StrCat(", template ", req->template_name().substr(0, 128)),
             req->rebuild() ? ", rebuild" : ""));
  auto started =
      builds_->Start(TargetSpec(*req), req->rebuild(), peer->identity, &audit);
  if (!started.ok()) return ToGrpcStatus(started.status());
  resp->set_plan_text(RenderCustomizationPlanText(started->plan.plan));
  auto plan_json = CustomizationPlanToJson(started->plan.plan);
  if (!plan_json.ok()) return ToGrpcStatus(plan_json.status());
  resp->set_plan_json(*plan_json);
  if (started->cached) {
    resp->set_cached(true);
    resp->set_image_id(started->cached->backup_id);
    audit.details += StrCat(": cached image ", started->cached->backup_id);
    if (auto a = catalog_->AppendAudit(audit); !a.ok()) {
      return ToGrpcStatus(a.status());
    }
  } else {
    FillJob(*started->job, resp->mutable_job());
  }
  return grpc::Status::OK;
}

grpc::Status AdminHandler::ExportImage(
    grpc::ServerContext* ctx, const v1::ExportImageRequest* req,
    grpc::ServerWriter<v1::ExportImageChunk>* writer) {
  const std::string target = StrCat("backup/", req->backup_id().substr(0, 128));
  auto peer =
      Authorize(ctx, req, {Role::kAdmin, Role::kOperator, Role::kHelpdesk},
                "Admin.ExportImage", "export", target);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  bool broken = false;  // the caller went away
  auto exported = exports_->Export(
      req->backup_id(), req->format(),
      [&](uint64_t done, uint64_t total) {
        v1::ExportImageChunk c;
        c.set_phase("convert");
        c.set_done_bytes(done);
        c.set_total_bytes(total);
        if (!broken && !writer->Write(c)) broken = true;
      },
      [&] { return broken || ctx->IsCancelled(); });
  if (!exported.ok()) return ToGrpcStatus(exported.status());
  const ImageExportResult& r = exported->result;
  uint64_t sent = 0;
  auto summary = ReadDataExtents(
      r.destination, kExportPieceBytes,
      [&](uint64_t offset, std::string_view data) -> Status {
        v1::ExportImageChunk c;
        c.set_phase("send");
        c.set_offset(offset);
        c.set_data(std::string(data));
        sent += data.size();
        c.set_done_bytes(sent);
        c.set_total_bytes(r.allocated_bytes);
        if (ctx->IsCancelled() || !writer->Write(c)) {
          return absl::CancelledError("the caller stopped the export");
        }
        return Status();
      });
  if (!summary.ok()) return ToGrpcStatus(summary.status());
  v1::ExportImageChunk last;
  last.set_phase("send");
  last.set_done_bytes(sent);
  last.set_total_bytes(sent);
  last.set_last(true);
  last.set_file_size(summary->file_size);
  last.set_sha256(summary->sha256_hex);
  last.set_virtual_size(r.virtual_size);
  if (!writer->Write(last)) {
    return ToGrpcStatus(absl::CancelledError("the caller stopped the export"));
  }
  AuditEntry e = Audit(
      *peer, "export", target,
      StrCat(ImageFormatName(r.format), ", ", summary->file_size, " bytes"));
  if (auto a = catalog_->AppendAudit(e); !a.ok()) {
    spdlog::error("audit of an export: {}", ToStd(a.status().message()));
  }
  return grpc::Status::OK;
}

grpc::Status AdminHandler::ImportTemplate(grpc::ServerContext* ctx,
                                          const v1::ImportTemplateRequest* req,
                                          v1::TemplateInfo* resp) {
  const std::string target = StrCat("template/", req->name().substr(0, 128));
  auto peer = Authorize(ctx, req, {Role::kAdmin, Role::kOperator},
                        "Admin.ImportTemplate", "template.import", target);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  AuditEntry audit =
      Audit(*peer, "template.import", target,
            StrCat("from image ", req->from_backup_id().substr(0, 128)));
  auto t = templates_->Import(req->name(), req->from_backup_id(),
                              req->description(), peer->identity, &audit);
  if (!t.ok()) return ToGrpcStatus(t.status());
  FillTemplate(*t, resp);
  return grpc::Status::OK;
}

grpc::Status AdminHandler::ListTemplates(grpc::ServerContext* ctx,
                                         const v1::ListTemplatesRequest* req,
                                         v1::ListTemplatesResponse* resp) {
  auto peer = Authorize(ctx, req, kReaders, "Admin.ListTemplates");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  auto all = catalog_->ListTemplates();
  if (!all.ok()) return ToGrpcStatus(all.status());
  for (const BootTemplate& t : *all) FillTemplate(t, resp->add_templates());
  return grpc::Status::OK;
}

grpc::Status AdminHandler::GetTemplate(grpc::ServerContext* ctx,
                                       const v1::GetTemplateRequest* req,
                                       v1::TemplateInfo* resp) {
  auto peer = Authorize(ctx, req, kReaders, "Admin.GetTemplate");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  auto t = catalog_->GetTemplate(req->name());
  if (!t.ok()) return ToGrpcStatus(t.status());
  FillTemplate(*t, resp);
  return grpc::Status::OK;
}

grpc::Status AdminHandler::DeleteTemplate(grpc::ServerContext* ctx,
                                          const v1::DeleteTemplateRequest* req,
                                          v1::DeleteTemplateResponse*) {
  const std::string target = StrCat("template/", req->name().substr(0, 128));
  auto peer = Authorize(ctx, req, {Role::kAdmin}, "Admin.DeleteTemplate",
                        "template.delete", target);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  AuditEntry audit = Audit(*peer, "template.delete", target);
  return ToGrpcStatus(catalog_->DeleteTemplate(req->name(), &audit));
}

grpc::Status AdminHandler::OpenBrowse(grpc::ServerContext* ctx,
                                      const v1::OpenBrowseRequest* req,
                                      v1::OpenBrowseResponse* resp) {
  const std::string target = req->backup_ids_size() == 1
                                 ? req->backup_ids(0)
                                 : StrCat(req->backup_ids_size(), " backups");
  auto peer =
      Authorize(ctx, req, {Role::kAdmin, Role::kOperator, Role::kHelpdesk},
                "Admin.OpenBrowse", "browse.open", target);
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  if (req->backup_ids().empty() || req->backup_ids_size() > kMaxBrowseGrants) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        StrCat("name 1-", kMaxBrowseGrants, " backups to browse")));
  }
  for (const std::string& id : req->backup_ids()) {
    auto grant = engine_->GrantBrowse(id, peer->identity, kBrowseTicketTtl);
    if (!grant.ok()) return ToGrpcStatus(grant.status());
    v1::BrowseGrantInfo* g = resp->add_grants();
    g->set_backup_id(grant->backup_id);
    g->set_client_id(grant->client_id);
    g->set_media_id(grant->media_id);
    g->set_media_address(grant->media_address);
    g->set_ticket(std::move(grant->ticket));
    g->set_expires_unix_us(grant->expires_unix_us);
  }
  AuditEntry e = Audit(*peer, "browse.open", target);
  if (auto a = catalog_->AppendAudit(e); !a.ok()) {
    return ToGrpcStatus(a.status());
  }
  return grpc::Status::OK;
}

}  // namespace cairn
