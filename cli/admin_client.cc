#include "cli/admin_client.h"

#include "common/strings.h"
#include "common/tls.h"

namespace cairn::ctl {
namespace {
constexpr int kAdminMaxMessageBytes = 4 << 20;
}  // namespace

StatusOr<std::unique_ptr<AdminClient>> AdminClient::Create(
    const AdminClientOptions& o) {
  auto files = ReadTlsFiles(o.cred_dir);
  if (!files.ok()) {
    return absl::FailedPreconditionError(
        StrCat("cannot use the credential in ", o.cred_dir, ": ",
               ToStd(files.status().message()),
               " (pass --cred-dir with ca.pem, cert.pem and key.pem, e.g. "
               "SERVERDIR/admin from `cairn-server init`)"));
  }
  CAIRN_ASSIGN_OR_RETURN(auto creds, MakeChannelCredentials(*files));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kAdminMaxMessageBytes);
  args.SetMaxSendMessageSize(kAdminMaxMessageBytes);
  // Above gRPC's default minimum ping interval, so a quiet server does not
  // answer with GOAWAY; detects a dead server during a long watch.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 330'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  auto channel = grpc::CreateCustomChannel(o.server, creds, args);
  return std::unique_ptr<AdminClient>(
      new AdminClient(std::move(channel), o.server, o.timeout));
}

AdminClient::AdminClient(std::shared_ptr<grpc::Channel> channel,
                         std::string server, std::chrono::milliseconds timeout)
    : stub_(v1::Admin::NewStub(channel)),
      server_(std::move(server)),
      timeout_(timeout) {}

void AdminClient::Prepare(grpc::ClientContext* ctx) const {
  ctx->set_deadline(std::chrono::system_clock::now() + timeout_);
}

Status AdminClient::FromGrpc(const grpc::Status& s,
                             std::string_view what) const {
  if (s.ok()) return absl::OkStatus();
  auto code = static_cast<absl::StatusCode>(s.error_code());
  switch (code) {
    case absl::StatusCode::kUnavailable:
      return absl::UnavailableError(StrCat("cannot reach cairn-server at ",
                                           server_, ": ", s.error_message()));
    case absl::StatusCode::kDeadlineExceeded:
      return absl::DeadlineExceededError(
          StrCat(what, ": cairn-server at ", server_,
                 " did not answer within --timeout"));
    default:
      return Status(code, s.error_message().empty()
                              ? StrCat(what, " failed at ", server_)
                              : s.error_message());
  }
}

StatusOr<v1::CreateTokenResponse> AdminClient::CreateToken(
    v1::Role role, int64_t ttl_seconds) {
  v1::CreateTokenRequest req;
  req.set_role(role);
  req.set_ttl_seconds(ttl_seconds);
  v1::CreateTokenResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->CreateToken(&ctx, req, &resp), "CreateToken"));
  return resp;
}

StatusOr<v1::ListClientsResponse> AdminClient::ListClients() {
  v1::ListClientsResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->ListClients(&ctx, v1::ListClientsRequest(), &resp),
               "ListClients"));
  return resp;
}

StatusOr<v1::ClientInfo> AdminClient::GetClient(const std::string& client_id) {
  v1::GetClientRequest req;
  req.set_client_id(client_id);
  v1::ClientInfo resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->GetClient(&ctx, req, &resp), "GetClient"));
  return resp;
}

Status AdminClient::RevokeClient(const std::string& client_id) {
  v1::RevokeClientRequest req;
  req.set_client_id(client_id);
  v1::RevokeClientResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  return FromGrpc(stub_->RevokeClient(&ctx, req, &resp), "RevokeClient");
}

StatusOr<v1::JobInfo> AdminClient::StartBackup(
    const v1::StartBackupRequest& req) {
  v1::JobInfo resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->StartBackup(&ctx, req, &resp), "StartBackup"));
  return resp;
}

StatusOr<v1::ListBackupsResponse> AdminClient::ListBackups(
    const std::string& client_id) {
  v1::ListBackupsRequest req;
  req.set_client_id(client_id);
  v1::ListBackupsResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->ListBackups(&ctx, req, &resp), "ListBackups"));
  return resp;
}

StatusOr<v1::OpenBrowseResponse> AdminClient::OpenBrowse(
    const std::vector<std::string>& backup_ids) {
  v1::OpenBrowseRequest req;
  for (const std::string& id : backup_ids) req.add_backup_ids(id);
  v1::OpenBrowseResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->OpenBrowse(&ctx, req, &resp), "OpenBrowse"));
  return resp;
}

StatusOr<v1::BackupInfo> AdminClient::GetBackup(const std::string& backup_id) {
  v1::GetBackupRequest req;
  req.set_backup_id(backup_id);
  v1::BackupInfo resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->GetBackup(&ctx, req, &resp), "GetBackup"));
  return resp;
}

StatusOr<v1::ProfileInfo> AdminClient::GetProfile(
    const v1::GetProfileRequest& req) {
  v1::ProfileInfo resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->GetProfile(&ctx, req, &resp), "GetProfile"));
  return resp;
}

Status AdminClient::RefreshProfile(const std::string& client_id) {
  v1::RefreshProfileRequest req;
  req.set_client_id(client_id);
  v1::RefreshProfileResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  return FromGrpc(stub_->RefreshProfile(&ctx, req, &resp), "RefreshProfile");
}

StatusOr<v1::DiffProfilesResponse> AdminClient::DiffProfiles(
    const v1::DiffProfilesRequest& req) {
  v1::DiffProfilesResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->DiffProfiles(&ctx, req, &resp), "DiffProfiles"));
  return resp;
}

StatusOr<v1::JobInfo> AdminClient::StartRestore(
    const v1::StartRestoreRequest& req) {
  v1::JobInfo resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->StartRestore(&ctx, req, &resp), "StartRestore"));
  return resp;
}

StatusOr<v1::JobInfo> AdminClient::StartFileRestore(
    const v1::StartFileRestoreRequest& req) {
  v1::JobInfo resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->StartFileRestore(&ctx, req, &resp), "StartFileRestore"));
  return resp;
}

StatusOr<v1::ListJobsResponse> AdminClient::ListJobs(
    const std::string& client_id, const std::string& state) {
  v1::ListJobsRequest req;
  req.set_client_id(client_id);
  req.set_state(state);
  v1::ListJobsResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->ListJobs(&ctx, req, &resp), "ListJobs"));
  return resp;
}

StatusOr<v1::JobInfo> AdminClient::CancelJob(uint64_t job_id) {
  v1::CancelJobRequest req;
  req.set_job_id(job_id);
  v1::JobInfo resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->CancelJob(&ctx, req, &resp), "CancelJob"));
  return resp;
}

Status AdminClient::WatchJob(
    uint64_t job_id, const std::function<void(const v1::JobInfo&)>& on_update) {
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  grpc::ClientContext ctx;  // no deadline: the stream lasts the job
  auto reader = stub_->WatchJob(&ctx, req);
  v1::JobInfo info;
  while (reader->Read(&info)) on_update(info);
  return FromGrpc(reader->Finish(), "WatchJob");
}

Status AdminClient::ExportImage(
    const v1::ExportImageRequest& req,
    const std::function<Status(const v1::ExportImageChunk&)>& on_chunk) {
  grpc::ClientContext ctx;  // no deadline: see the header
  auto reader = stub_->ExportImage(&ctx, req);
  v1::ExportImageChunk chunk;
  Status handled;
  while (handled.ok() && reader->Read(&chunk)) handled = on_chunk(chunk);
  if (!handled.ok()) {
    ctx.TryCancel();
    reader->Finish().ok();  // the cancellation's own status is not news
    return handled;
  }
  return FromGrpc(reader->Finish(), "ExportImage");
}

}  // namespace cairn::ctl
