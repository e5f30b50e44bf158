#include "agent/remote_media.h"

#include "common/chunk_format.h"
#include "common/message_limits.h"
#include "common/strings.h"

namespace cairn {
namespace {
constexpr size_t kHasBatch = 4096;  // matches kMaxIdsPerHasChunks
}  // namespace

grpc::ChannelArguments MediaChannelArguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMediaMaxMessageBytes);
  args.SetMaxSendMessageSize(kMediaMaxMessageBytes);

  return args;
}

struct RemoteMedia::PendingPut {
  grpc::ClientContext ctx;
  v1::PutChunkRequest req;
  v1::PutChunkResponse resp;
  uint64_t bytes = 0;
};

RemoteMedia::RemoteMedia(std::shared_ptr<grpc::Channel> channel,
                         std::string address, std::string ticket,
                         std::chrono::milliseconds deadline,
                         uint64_t max_in_flight_bytes)
    : stub_(v1::MediaService::NewStub(channel)),
      address_(std::move(address)),
      ticket_(std::move(ticket)),
      deadline_(deadline),
      max_in_flight_bytes_(max_in_flight_bytes) {}

RemoteMedia::~RemoteMedia() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (PendingPut* p : in_flight_) p->ctx.TryCancel();
    for (auto& p : queue_) pending_bytes_ -= p->bytes;
    queue_.clear();
  }
  work_.notify_all();
  for (std::thread& t : uploaders_) t.join();
}

Status RemoteMedia::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  put_done_.wait(lock, [&] { return queue_.empty() && in_flight_.empty(); });
  return put_error_;
}

void RemoteMedia::Upload() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    std::unique_ptr<PendingPut> p = std::move(queue_.front());
    queue_.pop_front();
    Status status;
    if (put_error_.ok()) {  // after a failure the rest is not sent
      in_flight_.insert(p.get());
      lock.unlock();
      status = FromGrpc(stub_->PutChunk(&p->ctx, p->req, &p->resp), "PutChunk");
      lock.lock();
      in_flight_.erase(p.get());
    }
    if (!status.ok() && put_error_.ok()) put_error_ = std::move(status);
    pending_bytes_ -= p->bytes;
    put_done_.notify_all();
  }
}

void RemoteMedia::Prepare(grpc::ClientContext* ctx) const {
  ctx->set_deadline(std::chrono::system_clock::now() + deadline_);
}

Status RemoteMedia::FromGrpc(const grpc::Status& s,
                             std::string_view what) const {
  if (s.ok()) return absl::OkStatus();
  return Status(
      static_cast<absl::StatusCode>(s.error_code()),
      StrCat(what, " at media agent ", address_, ": ", s.error_message()));
}

StatusOr<std::vector<bool>> RemoteMedia::HasChunks(
    std::span<const ChunkId> ids) {
  std::vector<bool> present;
  present.reserve(ids.size());
  for (size_t start = 0; start < ids.size(); start += kHasBatch) {
    v1::HasChunksRequest req;
    req.set_ticket(ticket_);
    size_t end = std::min(ids.size(), start + kHasBatch);
    for (size_t i = start; i < end; ++i)
      req.add_ids(std::string(ids[i].AsStringView()));
    v1::HasChunksResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx);
    CAIRN_RETURN_IF_ERROR(
        FromGrpc(stub_->HasChunks(&ctx, req, &resp), "HasChunks"));
    if (static_cast<size_t>(resp.present_size()) != end - start) {
      return absl::InternalError(StrCat("media agent ", address_, " answered ",
                                        resp.present_size(), " of ",
                                        end - start, " ids"));
    }
    for (bool b : resp.present()) present.push_back(b);
  }
  return present;
}

Status RemoteMedia::PutChunk(const ChunkId& id, std::string_view stored) {
  auto p = std::make_unique<PendingPut>();
  p->bytes = stored.size();
  p->req.set_ticket(ticket_);
  p->req.set_id(std::string(id.AsStringView()));
  p->req.set_stored(std::string(stored));
  Prepare(&p->ctx);
  std::unique_lock<std::mutex> lock(mu_);
  put_done_.wait(lock, [&] {
    return !put_error_.ok() || pending_bytes_ == 0 ||
           pending_bytes_ + p->bytes <= max_in_flight_bytes_;
  });
  if (!put_error_.ok()) return put_error_;
  if (uploaders_.empty()) {
    for (int i = 0; i < kUploaders; ++i) {
      uploaders_.emplace_back([this] { Upload(); });
    }
  }
  pending_bytes_ += p->bytes;
  queue_.push_back(std::move(p));
  work_.notify_one();
  return absl::OkStatus();
}

Status RemoteMedia::Commit(const std::string& backup_id,
                           std::string_view manifest) {
  CAIRN_RETURN_IF_ERROR(Flush());
  v1::CommitBackupRequest req;
  req.set_ticket(ticket_);
  req.set_backup_id(backup_id);
  req.set_manifest(std::string(manifest));
  v1::CommitBackupResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->CommitBackup(&ctx, req, &resp), "CommitBackup"));
  std::lock_guard<std::mutex> lock(mu_);
  receipt_ = std::move(*resp.mutable_receipt());
  return absl::OkStatus();
}

std::string RemoteMedia::commit_receipt() const {
  std::lock_guard<std::mutex> lock(mu_);
  return receipt_;
}

StatusOr<Manifest> RemoteMedia::LoadManifest(const std::string& backup_id,
                                             const DataKey* key) const {
  v1::GetManifestRequest req;
  req.set_ticket(ticket_);
  req.set_backup_id(backup_id);
  v1::GetManifestResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->GetManifest(&ctx, req, &resp), "GetManifest"));
  return DecodeManifest(resp.manifest(),
                        StrCat("'", backup_id, "' from media agent ", address_),
                        key);
}

StatusOr<std::string> RemoteMedia::GetChunk(const ChunkId& id) const {
  v1::GetChunkRequest req;
  req.set_ticket(ticket_);
  req.set_id(std::string(id.AsStringView()));
  v1::GetChunkResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->GetChunk(&ctx, req, &resp), "GetChunk"));
  // Damage in transit or at rest is caught here, before decoding.
  auto header = CheckStoredChunk(resp.stored());
  if (!header.ok()) {
    return absl::DataLossError(StrCat("chunk ", id.ToHex(),
                                      " from media agent ", address_, ": ",
                                      header.status().message()));
  }
  return std::move(*resp.mutable_stored());
}

std::string RemoteMedia::DescribeChunk(const ChunkId& id) const {
  return StrCat("media agent ", address_);
}

}  // namespace cairn
