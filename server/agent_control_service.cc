#include "server/agent_control_service.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/peer_identity.h"
#include "common/strings.h"
#include "server/request_size.h"

namespace cairn {
namespace {

using Stream = grpc::ServerReaderWriter<v1::ServerCommand, v1::AgentMessage>;

void ToProto(const MediaAssignment& m, v1::MediaSession* out) {
  out->set_address(m.address);
  out->set_ticket(m.ticket);
  out->set_data_key(m.data_key);
}

v1::ServerCommand ToProto(const AgentCommand& command) {
  v1::ServerCommand out;
  if (const auto* b = std::get_if<BackupAssignment>(&command)) {
    auto* p = out.mutable_backup();
    p->set_job_id(b->job_id);
    p->set_source_path(b->source_path);
    p->set_backup_id(b->backup_id);
    p->set_parent_backup_id(b->parent_backup_id);
    p->set_chunk_size(b->chunk_size);
    p->set_zstd_level(b->zstd_level);
    ToProto(b->media, p->mutable_media());
  } else if (const auto* r = std::get_if<RestoreAssignment>(&command)) {
    auto* p = out.mutable_restore();
    p->set_job_id(r->job_id);
    p->set_backup_id(r->backup_id);
    p->set_target_path(r->target_path);
    ToProto(r->media, p->mutable_media());
    p->set_resume(r->resume);
    p->set_verify(r->verify);
    p->set_reboot(r->reboot);
  } else if (const auto* f = std::get_if<FileRestoreAssignment>(&command)) {
    auto* p = out.mutable_file_restore();
    p->set_job_id(f->job_id);
    p->set_backup_id(f->backup_id);
    if (f->partition) p->set_partition(*f->partition);
    p->set_source_path(f->source_path);
    p->set_target_path(f->target_path);
    ToProto(f->media, p->mutable_media());
  } else if (const auto* c = std::get_if<CancelAssignment>(&command)) {
    out.mutable_cancel()->set_job_id(c->job_id);
  } else if (std::holds_alternative<ProfileRequestCommand>(command)) {
    out.mutable_profile_request();
  }
  return out;
}

JobOutcome FromProto(const v1::JobResult& r) {
  JobOutcome o;
  o.job_id = r.job_id();
  o.ok = r.ok();
  o.error = r.error();
  o.backup_id = r.backup_id();
  o.image_size = r.image_size();
  o.new_stored_bytes = r.new_stored_bytes();
  o.chunks_new = r.chunks_new();
  o.chunks_deduplicated = r.chunks_deduplicated();
  o.commit_receipt = r.commit_receipt();
  return o;
}

// One Connect stream as an AgentSession: a command queue drained by a
// writer thread.
class StreamSession final : public AgentSession {
 public:
  StreamSession(grpc::ServerContext* context, Stream* stream,
                std::chrono::milliseconds heartbeat_interval)
      : context_(context),
        stream_(stream),
        heartbeat_interval_(heartbeat_interval) {}

  bool Push(AgentCommand command) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return false;
      queue_.push_back(std::move(command));
    }
    cv_.notify_all();
    return true;
  }

  void Close() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return;
      closed_ = true;
      // The handler clears context_ before it returns, so this never
      // touches a finished call.
      if (context_ != nullptr) context_->TryCancel();
    }
    cv_.notify_all();
  }

  // The writer thread's body: writes queued commands (and heartbeats when
  // idle) until the session closes or a write fails.
  void RunWriter() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!closed_) {
      if (queue_.empty()) {
        bool woke = cv_.wait_for(lock, heartbeat_interval_,
                                 [&] { return closed_ || !queue_.empty(); });
        if (closed_) break;
        if (!woke) {
          v1::ServerCommand hb;
          hb.mutable_heartbeat()->set_sent_unix_us(
              absl::ToUnixMicros(absl::Now()));
          hb.mutable_heartbeat()->set_interval_ms(
              static_cast<uint32_t>(heartbeat_interval_.count()));
          lock.unlock();
          bool ok = stream_->Write(hb);
          lock.lock();
          if (!ok) break;
          continue;
        }
      }
      AgentCommand command = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      bool ok = stream_->Write(ToProto(command));
      lock.lock();
      if (!ok) break;
    }
    if (!closed_) {
      closed_ = true;
      if (context_ != nullptr) context_->TryCancel();
    }
  }

  // Stops the writer without cancelling the call, so the status the handler
  // returns reaches the agent.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

  // Called by the handler before it returns: the session is closed and the
  // call's context must no longer be touched.
  void Finish() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    context_ = nullptr;
    cv_.notify_all();
  }

 private:
  grpc::ServerContext* context_;  // guarded by mu_; null once finished
  Stream* const stream_;
  const std::chrono::milliseconds heartbeat_interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<AgentCommand> queue_;  // guarded by mu_
  bool closed_ = false;             // guarded by mu_
};

}  // namespace

AgentControlHandler::AgentControlHandler(
    Catalog* catalog, EnrollmentService* enrollment, JobEngine* engine,
    AgentRegistry* registry, const PeerAuthorizer* authorizer,
    ClientProfiles* profiles, AgentControlOptions options)
    : catalog_(catalog),
      enrollment_(enrollment),
      engine_(engine),
      registry_(registry),
      authorizer_(authorizer),
      profiles_(profiles),
      options_(options) {}

grpc::Status AgentControlHandler::Enroll(grpc::ServerContext* context,
                                         const v1::EnrollRequest* request,
                                         v1::EnrollResponse* response) {
  if (Status s = CheckControlRequestSize(*request, "AgentControl.Enroll");
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  EnrollmentRequest r;
  r.token = request->token();
  r.hostname = request->hostname();
  r.csr_pem = request->csr_pem();
  switch (request->role()) {
    case v1::ROLE_AGENT:
      r.role = Role::kAgent;
      break;
    case v1::ROLE_MEDIA:
      r.role = Role::kMedia;
      break;
    default:
      return ToGrpcStatus(absl::InvalidArgumentError(
          "enrollment is for ROLE_AGENT or ROLE_MEDIA only"));
  }
  r.address = request->address();
  auto result = enrollment_->Enroll(r);
  if (!result.ok()) {
    spdlog::warn("enrollment of '{}' from {} refused: {}",
                 request->hostname().substr(0, 128), context->peer(),
                 ToStd(result.status().message()));
    return ToGrpcStatus(result.status());
  }
  spdlog::info("enrolled {} '{}'", RoleName(r.role), result->identity);
  response->set_identity(result->identity);
  response->set_certificate_pem(result->certificate_pem);
  response->set_ca_certificate_pem(result->ca_certificate_pem);
  response->set_ticket_signer_pem(result->ticket_signer_pem);
  return grpc::Status::OK;
}

grpc::Status AgentControlHandler::Connect(grpc::ServerContext* context,
                                          Stream* stream) {
  auto peer = AuthorizePeer(*context, {Role::kAgent}, "AgentControl.Connect");
  if (!peer.ok()) return ToGrpcStatus(peer.status());
  if (Status s = authorizer_->CheckActive(*peer); !s.ok()) {
    spdlog::warn("Connect refused: {}", ToStd(s.message()));
    return ToGrpcStatus(s);
  }
  const std::string client_id = peer->identity;

  v1::AgentMessage first;
  if (!stream->Read(&first)) {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "stream closed before Hello");
  }
  if (Status s = CheckControlRequestSize(first, "AgentControl.Connect");
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (first.kind_case() != v1::AgentMessage::kHello) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        "the first message on the Connect stream must be Hello"));
  }
  std::vector<uint64_t> still_running(first.hello().running_job_ids().begin(),
                                      first.hello().running_job_ids().end());

  auto session = std::make_shared<StreamSession>(context, stream,
                                                 options_.heartbeat_interval);
  auto session_id = engine_->AgentConnected(client_id, session, still_running);
  if (!session_id.ok()) {
    session->Finish();
    return ToGrpcStatus(session_id.status());
  }
  spdlog::info("agent {} connected (version '{}')", client_id,
               first.hello().version().substr(0, 64));
  std::thread writer([&] { session->RunWriter(); });

  grpc::Status result = grpc::Status::OK;
  v1::AgentMessage message;
  while (stream->Read(&message)) {
    if (Status s = CheckControlRequestSize(message, "AgentControl.Connect");
        !s.ok()) {
      result = ToGrpcStatus(s);
      break;
    }
    registry_->Touch(client_id);
    if (Status s = authorizer_->CheckActive(*peer); !s.ok()) {
      result = ToGrpcStatus(s);
      break;
    }
    Status s;
    switch (message.kind_case()) {
      case v1::AgentMessage::kHeartbeat:
        s = catalog_->TouchClient(client_id);
        break;
      case v1::AgentMessage::kProgress: {
        JobProgressReport p;
        p.job_id = message.progress().job_id();
        p.done_bytes = message.progress().done_bytes();
        p.total_bytes = message.progress().total_bytes();
        s = engine_->ReportProgress(client_id, *session_id, p);
        break;
      }
      case v1::AgentMessage::kResult:
        s = engine_->ReportResult(client_id, *session_id,
                                  FromProto(message.result()));
        break;
      case v1::AgentMessage::kProfile: {
        auto added = profiles_->Record(
            client_id, message.profile().profile_zstd(),
            message.profile().raw_size(), absl::ToUnixMicros(absl::Now()));
        if (added.ok() && *added) {
          spdlog::info("agent {} reported a new hardware profile", client_id);
        }
        s = added.status();
        break;
      }
      case v1::AgentMessage::kHello:
      default:
        result = ToGrpcStatus(absl::InvalidArgumentError(
            "unexpected message on the Connect stream (Hello only once; "
            "heartbeat, progress, result or profile after it)"));
        break;
    }
    if (!result.ok()) break;
    if (!s.ok()) {
      spdlog::warn("report from agent {} refused: {}", client_id,
                   ToStd(s.message()));
    }
  }
  session->Stop();
  writer.join();
  session->Finish();
  engine_->AgentDisconnected(client_id, *session_id);
  spdlog::info("agent {} disconnected", client_id);
  return result;
}

}  // namespace cairn
