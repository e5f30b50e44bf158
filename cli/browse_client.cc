#include "cli/browse_client.h"

#include <grpcpp/grpcpp.h>

#include "common/message_limits.h"
#include "common/strings.h"
#include "common/tls.h"

namespace cairn::ctl {
namespace {

v1::PartitionRef PartitionRefOf(std::optional<uint32_t> partition) {
  v1::PartitionRef ref;
  if (partition) ref.set_number(*partition);
  return ref;
}

}  // namespace

BrowseClient::BrowseClient(AdminClient* admin, std::string server,
                           std::string cred_dir,
                           std::chrono::milliseconds timeout)
    : admin_(admin),
      server_(std::move(server)),
      cred_dir_(std::move(cred_dir)),
      timeout_(timeout) {}

Status BrowseClient::Open(const std::vector<std::string>& backup_ids) {
  std::vector<std::string> missing;
  for (const std::string& id : backup_ids) {
    if (grants_.count(id) == 0) missing.push_back(id);
  }
  if (missing.empty()) return Status();
  CAIRN_ASSIGN_OR_RETURN(v1::OpenBrowseResponse resp,
                         admin_->OpenBrowse(missing));
  for (auto& g : *resp.mutable_grants()) {
    Grant grant;
    const std::string address =
        g.media_address().empty() ? server_ : g.media_address();
    CAIRN_ASSIGN_OR_RETURN(grant.stub, StubFor(address));
    grant.info = std::move(g);
    const std::string id = grant.info.backup_id();
    grants_[id] = std::move(grant);
  }
  return Status();
}

StatusOr<v1::BrowseService::Stub*> BrowseClient::StubFor(
    const std::string& address) {
  auto it = stubs_.find(address);
  if (it != stubs_.end()) return it->second.get();
  auto files = ReadTlsFiles(cred_dir_);
  if (!files.ok()) return files.status();
  CAIRN_ASSIGN_OR_RETURN(auto creds, MakeChannelCredentials(*files));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMediaMaxMessageBytes);
  args.SetMaxSendMessageSize(kControlMaxMessageBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 330'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  auto stub = v1::BrowseService::NewStub(
      grpc::CreateCustomChannel(address, creds, args));
  v1::BrowseService::Stub* raw = stub.get();
  stubs_.emplace(address, std::move(stub));
  return raw;
}

StatusOr<BrowseClient::Grant*> BrowseClient::GrantFor(
    const std::string& backup_id) {
  CAIRN_RETURN_IF_ERROR(Open({backup_id}));
  auto it = grants_.find(backup_id);
  if (it == grants_.end()) {
    return absl::InternalError(
        StrCat("the server granted no browse ticket for ", backup_id));
  }
  return &it->second;
}

Status BrowseClient::FromGrpc(const grpc::Status& s, const Grant& g,
                              std::string_view what) const {
  if (s.ok()) return Status();
  const std::string where =
      g.info.media_address().empty()
          ? StrCat("the embedded media agent at ", server_)
          : StrCat("media agent '", g.info.media_id(), "' at ",
                   g.info.media_address());
  auto code = static_cast<absl::StatusCode>(s.error_code());
  switch (code) {
    case absl::StatusCode::kUnavailable:
      return absl::UnavailableError(
          StrCat("cannot reach ", where, ": ", s.error_message()));
    case absl::StatusCode::kDeadlineExceeded:
      return absl::DeadlineExceededError(
          StrCat(what, ": ", where, " did not answer within --timeout"));
    case absl::StatusCode::kUnimplemented:
      return absl::UnimplementedError(
          StrCat(where, " does not serve browse (", s.error_message(), ")"));
    default:
      return Status(code, s.error_message().empty()
                              ? StrCat(what, " failed at ", where)
                              : s.error_message());
  }
}

StatusOr<v1::BrowseListResponse> BrowseClient::List(
    const std::string& backup_id, std::optional<uint32_t> partition,
    const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(Grant * g, GrantFor(backup_id));
  v1::BrowseListRequest req;
  req.set_ticket(g->info.ticket());
  *req.mutable_partition() = PartitionRefOf(partition);
  req.set_path(path);
  v1::BrowseListResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(g->stub->List(&ctx, req, &resp), *g, "browse ls"));
  return resp;
}

StatusOr<v1::BrowseFindResponse> BrowseClient::Find(
    const std::string& backup_id, const std::string& pattern,
    std::optional<uint32_t> partition, uint32_t limit) {
  CAIRN_ASSIGN_OR_RETURN(Grant * g, GrantFor(backup_id));
  v1::BrowseFindRequest req;
  req.set_ticket(g->info.ticket());
  req.set_pattern(pattern);
  *req.mutable_partition() = PartitionRefOf(partition);
  req.set_limit(limit);
  v1::BrowseFindResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(g->stub->Find(&ctx, req, &resp), *g, "browse find"));
  return resp;
}

Status BrowseClient::Read(
    const std::string& backup_id, std::optional<uint32_t> partition,
    const std::string& path,
    const std::function<Status(const v1::FileEntry&)>& on_entry,
    const std::function<Status(std::string_view)>& on_data) {
  CAIRN_ASSIGN_OR_RETURN(Grant * g, GrantFor(backup_id));
  v1::BrowseReadRequest req;
  req.set_ticket(g->info.ticket());
  *req.mutable_partition() = PartitionRefOf(partition);
  req.set_path(path);
  grpc::ClientContext ctx;
  auto reader = g->stub->Read(&ctx, req);
  v1::BrowseReadResponse piece;
  bool first = true;
  Status failed;
  while (reader->Read(&piece)) {
    if (first) {
      if (!piece.has_entry()) {
        failed = absl::DataLossError(
            "the media agent sent data before the "
            "file's entry");
        break;
      }
      failed = on_entry(piece.entry());
      first = false;
      if (!failed.ok()) break;
    }
    if (!piece.data().empty()) {
      failed = on_data(piece.data());
      if (!failed.ok()) break;
    }
  }
  if (!failed.ok()) {
    ctx.TryCancel();
    reader->Finish().ok();  // the local error is the one to report
    return failed;
  }
  CAIRN_RETURN_IF_ERROR(FromGrpc(reader->Finish(), *g, "browse get"));
  if (first) {
    return absl::DataLossError(
        "the media agent ended the read without the "
        "file's entry");
  }
  return Status();
}

StatusOr<v1::BrowseCatalogueResponse> BrowseClient::Catalogue(
    const std::string& backup_id, bool rebuild) {
  CAIRN_ASSIGN_OR_RETURN(Grant * g, GrantFor(backup_id));
  v1::BrowseCatalogueRequest req;
  req.set_ticket(g->info.ticket());
  req.set_rebuild(rebuild);
  v1::BrowseCatalogueResponse resp;
  grpc::ClientContext ctx;
  // Building a catalogue walks every file system: allow more than a call.
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::max(timeout_, std::chrono::milliseconds(30 * 60000)));
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(g->stub->Catalogue(&ctx, req, &resp), *g, "browse catalogue"));
  return resp;
}

}  // namespace cairn::ctl
