// AdminHandler: the gRPC face of administration (proto/cairn/v1/admin.proto),
// what cairnctl calls. Thin: every RPC first authorizes the caller - a
// verified certificate with one of the roles the RPC's proto comment lists,
// still accepted by the catalog (PeerAuthorizer) - then converts proto to
// domain types and calls the catalog, EnrollmentService, JobEngine,
// RestoreBuilds, BootTemplates or ImageExports.
//
// Audit: every mutating RPC (CreateToken, RevokeClient, StartBackup,
// StartRestore, StartFileRestore, CancelJob, StartRestoreBuild,
// ImportTemplate, DeleteTemplate) writes its audit entry in the same
// catalog batch as the change (ExportImage, which changes nothing, once the
// file is sent); a refused attempt by an authenticated caller is audited
// with result "denied: ...".
//
// WatchJob streams the job once at once and again after each change the
// JobEngine reports (JobEvents), ending when the job ends, the caller
// cancels, or the server shuts down (UNAVAILABLE).
//
// Thread safety: thread-safe.
#ifndef CAIRN_SERVER_ADMIN_SERVICE_H_
#define CAIRN_SERVER_ADMIN_SERVICE_H_

#include <initializer_list>

#include "cairn/v1/admin.grpc.pb.h"
#include "server/agent_registry.h"
#include "server/boot_templates.h"
#include "server/catalog.h"
#include "server/client_profiles.h"
#include "server/enrollment_service.h"
#include "server/image_exports.h"
#include "server/job_engine.h"
#include "server/job_events.h"
#include "server/peer_authorizer.h"
#include "server/restore_builds.h"

namespace cairn {

// Enrollment tokens created with ttl_seconds 0 live this long.
inline constexpr std::chrono::seconds kDefaultTokenTtl = std::chrono::hours(1);
// Browse tickets (Admin.OpenBrowse) live this long.
inline constexpr std::chrono::seconds kBrowseTicketTtl = std::chrono::hours(1);
// Admin.ExportImage sends the file in pieces of at most this size.
inline constexpr size_t kExportPieceBytes = 1 << 20;
// Most backups one OpenBrowse may name.
inline constexpr int kMaxBrowseGrants = 1000;

class AdminHandler final : public v1::Admin::Service {
 public:
  // Nothing is owned; everything must outlive the handler.
  AdminHandler(Catalog* catalog, EnrollmentService* enrollment,
               JobEngine* engine, AgentRegistry* registry,
               const JobEvents* events, const PeerAuthorizer* authorizer,
               const ClientProfiles* profiles, RestoreBuilds* builds,
               BootTemplates* templates, const ImageExports* exports);

  grpc::Status CreateToken(grpc::ServerContext* ctx,
                           const v1::CreateTokenRequest* req,
                           v1::CreateTokenResponse* resp) override;
  grpc::Status ListClients(grpc::ServerContext* ctx,
                           const v1::ListClientsRequest* req,
                           v1::ListClientsResponse* resp) override;
  grpc::Status GetClient(grpc::ServerContext* ctx,
                         const v1::GetClientRequest* req,
                         v1::ClientInfo* resp) override;
  grpc::Status RevokeClient(grpc::ServerContext* ctx,
                            const v1::RevokeClientRequest* req,
                            v1::RevokeClientResponse* resp) override;
  grpc::Status StartBackup(grpc::ServerContext* ctx,
                           const v1::StartBackupRequest* req,
                           v1::JobInfo* resp) override;
  grpc::Status ListBackups(grpc::ServerContext* ctx,
                           const v1::ListBackupsRequest* req,
                           v1::ListBackupsResponse* resp) override;
  grpc::Status GetBackup(grpc::ServerContext* ctx,
                         const v1::GetBackupRequest* req,
                         v1::BackupInfo* resp) override;
  grpc::Status StartRestore(grpc::ServerContext* ctx,
                            const v1::StartRestoreRequest* req,
                            v1::JobInfo* resp) override;
  grpc::Status StartFileRestore(grpc::ServerContext* ctx,
                                const v1::StartFileRestoreRequest* req,
                                v1::JobInfo* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx,
                        const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override;
  grpc::Status WatchJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                        grpc::ServerWriter<v1::JobInfo>* writer) override;
  grpc::Status CancelJob(grpc::ServerContext* ctx,
                         const v1::CancelJobRequest* req,
                         v1::JobInfo* resp) override;

  grpc::Status GetProfile(grpc::ServerContext* ctx,
                          const v1::GetProfileRequest* req,
                          v1::ProfileInfo* resp) override;
  grpc::Status RefreshProfile(grpc::ServerContext* ctx,
                              const v1::RefreshProfileRequest* req,
                              v1::RefreshProfileResponse* resp) override;
  grpc::Status OpenBrowse(grpc::ServerContext* ctx,
                          const v1::OpenBrowseRequest* req,
                          v1::OpenBrowseResponse* resp) override;
  grpc::Status DiffProfiles(grpc::ServerContext* ctx,
                            const v1::DiffProfilesRequest* req,
                            v1::DiffProfilesResponse* resp) override;
  grpc::Status StartRestoreBuild(grpc::ServerContext* ctx,
                                 const v1::StartRestoreBuildRequest* req,
                                 v1::StartRestoreBuildResponse* resp) override;
  grpc::Status ExportImage(
      grpc::ServerContext* ctx, const v1::ExportImageRequest* req,
      grpc::ServerWriter<v1::ExportImageChunk>* writer) override;
  grpc::Status ImportTemplate(grpc::ServerContext* ctx,
                              const v1::ImportTemplateRequest* req,
                              v1::TemplateInfo* resp) override;
  grpc::Status ListTemplates(grpc::ServerContext* ctx,
                             const v1::ListTemplatesRequest* req,
                             v1::ListTemplatesResponse* resp) override;
  grpc::Status GetTemplate(grpc::ServerContext* ctx,
                           const v1::GetTemplateRequest* req,
                           v1::TemplateInfo* resp) override;
  grpc::Status DeleteTemplate(grpc::ServerContext* ctx,
                              const v1::DeleteTemplateRequest* req,
                              v1::DeleteTemplateResponse* resp) override;

 private:
  // The caller's identity if `request` is within the control message limit
  // and the caller holds one of `roles` and is active; a refusal of a named
  // `action` is audited.
  StatusOr<PeerIdentity> Authorize(grpc::ServerContext* ctx,
                                   const google::protobuf::Message* request,
                                   std::initializer_list<Role> roles,
                                   std::string_view what,
                                   std::string_view action = {},
                                   std::string_view target = {});
  void FillClient(const Client& c, v1::ClientInfo* out) const;

  Catalog* const catalog_;
  EnrollmentService* const enrollment_;
  JobEngine* const engine_;
  AgentRegistry* const registry_;
  const JobEvents* const events_;
  const PeerAuthorizer* const authorizer_;
  const ClientProfiles* const profiles_;
  RestoreBuilds* const builds_;
  BootTemplates* const templates_;
  const ImageExports* const exports_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_ADMIN_SERVICE_H_
