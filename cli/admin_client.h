// AdminClient: cairnctl's thin client for the Admin service
// (proto/cairn/v1/admin.proto) over mutual TLS with an operator credential
// (ca.pem, cert.pem, key.pem; `cairn-server init` writes SERVERDIR/admin).
// Every unary call has the configured deadline; WatchJob has none on the
// stream (it lasts as long as the job) and relies on gRPC keepalive to
// notice a dead server. Errors keep the server's code and say which server
// answered.
//
// Thread safety: thread-safe (gRPC stubs are).
#ifndef CAIRN_CLI_ADMIN_CLIENT_H_
#define CAIRN_CLI_ADMIN_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cairn/v1/admin.grpc.pb.h"
#include "common/status.h"

namespace cairn::ctl {

struct AdminClientOptions {
  std::string server;    // HOST:PORT
  std::string cred_dir;  // ca.pem, cert.pem, key.pem
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

class AdminClient {
 public:
  // Reads the credential; FailedPrecondition naming the directory if it is
  // missing or unusable. Does not connect yet.
  static StatusOr<std::unique_ptr<AdminClient>> Create(
      const AdminClientOptions& options);

  StatusOr<v1::CreateTokenResponse> CreateToken(v1::Role role,
                                                int64_t ttl_seconds);
  StatusOr<v1::ListClientsResponse> ListClients();
  StatusOr<v1::ClientInfo> GetClient(const std::string& client_id);
  Status RevokeClient(const std::string& client_id);
  StatusOr<v1::JobInfo> StartBackup(const v1::StartBackupRequest& request);
  StatusOr<v1::ListBackupsResponse> ListBackups(const std::string& client_id);
  StatusOr<v1::BackupInfo> GetBackup(const std::string& backup_id);
  StatusOr<v1::JobInfo> StartRestore(const v1::StartRestoreRequest& request);
  StatusOr<v1::JobInfo> StartFileRestore(
      const v1::StartFileRestoreRequest& request);
  StatusOr<v1::ListJobsResponse> ListJobs(const std::string& client_id,
                                          const std::string& state);
  StatusOr<v1::JobInfo> CancelJob(uint64_t job_id);
  StatusOr<v1::ProfileInfo> GetProfile(const v1::GetProfileRequest& request);
  Status RefreshProfile(const std::string& client_id);
  StatusOr<v1::DiffProfilesResponse> DiffProfiles(
      const v1::DiffProfilesRequest& request);
  StatusOr<v1::OpenBrowseResponse> OpenBrowse(
      const std::vector<std::string>& backup_ids);
  StatusOr<v1::StartRestoreBuildResponse> StartRestoreBuild(
      const v1::StartRestoreBuildRequest& request) {
    return Unary(&v1::Admin::Stub::StartRestoreBuild, request,
                 "StartRestoreBuild");
  }
  StatusOr<v1::TemplateInfo> ImportTemplate(
      const v1::ImportTemplateRequest& request) {
    return Unary(&v1::Admin::Stub::ImportTemplate, request, "ImportTemplate");
  }
  StatusOr<v1::ListTemplatesResponse> ListTemplates() {
    return Unary(&v1::Admin::Stub::ListTemplates, v1::ListTemplatesRequest(),
                 "ListTemplates");
  }
  StatusOr<v1::TemplateInfo> GetTemplate(const std::string& name) {
    v1::GetTemplateRequest req;
    req.set_name(name);
    return Unary(&v1::Admin::Stub::GetTemplate, req, "GetTemplate");
  }
  Status DeleteTemplate(const std::string& name) {
    v1::DeleteTemplateRequest req;
    req.set_name(name);
    return Unary(&v1::Admin::Stub::DeleteTemplate, req, "DeleteTemplate")
        .status();
  }
  // Calls `on_update` with each state of the job as the server streams it;
  // returns when the stream ends (OK) or fails.
  Status WatchJob(uint64_t job_id,
                  const std::function<void(const v1::JobInfo&)>& on_update);
  // Admin.ExportImage: calls `on_chunk` with each message; an error from it
  // cancels the call and is returned. No deadline (a conversion takes as
  // long as it takes).
  Status ExportImage(
      const v1::ExportImageRequest& request,
      const std::function<Status(const v1::ExportImageChunk&)>& on_chunk);

 private:
  AdminClient(std::shared_ptr<grpc::Channel> channel, std::string server,
              std::chrono::milliseconds timeout);
  void Prepare(grpc::ClientContext* ctx) const;
  Status FromGrpc(const grpc::Status& s, std::string_view what) const;
  // One unary call with the deadline and error mapping of every call.
  template <typename Request, typename Response>
  StatusOr<Response> Unary(grpc::Status (v1::Admin::Stub::*method)(
                               grpc::ClientContext*, const Request&, Response*),
                           const Request& request, std::string_view what) {
    Response response;
    grpc::ClientContext ctx;
    Prepare(&ctx);
    CAIRN_RETURN_IF_ERROR(
        FromGrpc((stub_.get()->*method)(&ctx, request, &response), what));
    return response;
  }

  std::unique_ptr<v1::Admin::Stub> stub_;
  const std::string server_;
  const std::chrono::milliseconds timeout_;
};

}  // namespace cairn::ctl

#endif  // CAIRN_CLI_ADMIN_CLIENT_H_
