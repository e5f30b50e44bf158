#include "agent/control_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/message_limits.h"
#include "common/strings.h"

namespace cairn {
namespace {

MediaSessionSpec MediaFromProto(const v1::MediaSession& m) {
  return {m.address(), m.ticket(), m.data_key()};
}

}  // namespace

std::shared_ptr<grpc::Channel> MakeControlChannel(
    const std::string& server_address,
    std::shared_ptr<grpc::ChannelCredentials> creds) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kControlMaxMessageBytes);
  args.SetMaxSendMessageSize(kControlMaxMessageBytes);
  // gRPC servers accept pings no more often than every 5 minutes by default;
  // stay above that so a quiet server does not answer with GOAWAY.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 330'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 10'000);
  return grpc::CreateCustomChannel(server_address, std::move(creds), args);
}

AgentJob BackupJobFromProto(const v1::BackupCommand& c) {
  BackupJob job;
  job.job_id = c.job_id();
  job.source_path = c.source_path();
  job.backup_id = c.backup_id();
  job.parent_backup_id = c.parent_backup_id();
  job.chunk_size = c.chunk_size();
  job.zstd_level = c.zstd_level();
  job.media = MediaFromProto(c.media());
  return job;
}

AgentJob RestoreJobFromProto(const v1::RestoreCommand& c) {
  RestoreJob job;
  job.job_id = c.job_id();
  job.backup_id = c.backup_id();
  job.target_path = c.target_path();
  job.media = MediaFromProto(c.media());
  job.resume = c.resume();
  job.verify = c.verify();
  job.reboot = c.reboot();
  return job;
}

AgentJob FileRestoreJobFromProto(const v1::FileRestoreCommand& c) {
  FileRestoreJob job;
  job.job_id = c.job_id();
  job.backup_id = c.backup_id();
  if (c.has_partition()) job.partition = c.partition();
  job.source_path = c.source_path();
  job.target_path = c.target_path();
  job.media = MediaFromProto(c.media());
  return job;
}

v1::JobResult JobResultToProto(const JobOutcome& o) {
  v1::JobResult r;
  r.set_job_id(o.job_id);
  r.set_ok(o.ok);
  r.set_error(o.error);
  r.set_backup_id(o.backup_id);
  r.set_image_size(o.image_size);
  r.set_new_stored_bytes(o.new_stored_bytes);
  r.set_chunks_new(o.chunks_new);
  r.set_chunks_deduplicated(o.chunks_deduplicated);
  r.set_commit_receipt(o.commit_receipt);
  return r;
}

ControlClient::ControlClient(std::shared_ptr<grpc::Channel> channel,
                             ControlClientOptions options)
    : channel_(channel),
      stub_(v1::AgentControl::NewStub(channel)),
      options_(std::move(options)) {}

ControlClient::~ControlClient() = default;

bool ControlClient::connected() const {
  std::lock_guard<std::mutex> lock(write_mu_);
  return stream_ != nullptr;
}

bool ControlClient::WriteLocked(const v1::AgentMessage& message) {
  if (stream_ == nullptr || writes_done_) return false;
  if (stream_->Write(message)) return true;
  // The stream is broken; make the reader notice now.
  context_->TryCancel();
  return false;
}

void ControlClient::HalfCloseLocked() {
  if (stream_ == nullptr || writes_done_) return;
  writes_done_ = true;
  if (!stream_->WritesDone()) context_->TryCancel();
}

bool ControlClient::IsStopping() const {
  std::lock_guard<std::mutex> state(state_mu_);
  return stopping_;
}

void ControlClient::SendProfile() {
  if (!options_.profile_source) return;
  auto report = options_.profile_source();
  if (!report.ok()) {
    spdlog::warn("hardware profile not sent: {}",
                 ToStd(report.status().message()));
    return;
  }
  v1::AgentMessage m;
  *m.mutable_profile() = *std::move(report);
  std::lock_guard<std::mutex> lock(write_mu_);
  WriteLocked(m);
}

void ControlClient::FlushResultsLocked() {
  while (!pending_results_.empty()) {
    v1::AgentMessage m;
    *m.mutable_result() = pending_results_.front();
    if (!WriteLocked(m)) return;
    spdlog::info("job {}: result sent ({})", pending_results_.front().job_id(),
                 pending_results_.front().ok() ? "ok" : "failed");
    pending_results_.pop_front();
  }
}

void ControlClient::ReportProgress(const JobProgressUpdate& update) {
  v1::AgentMessage m;
  auto* p = m.mutable_progress();
  p->set_job_id(update.job_id);
  p->set_done_bytes(update.done_bytes);
  p->set_total_bytes(update.total_bytes);
  std::lock_guard<std::mutex> lock(write_mu_);
  // Results go first; progress behind a pending result would be stale.
  if (pending_results_.empty()) WriteLocked(m);
}

void ControlClient::ReportResult(const JobOutcome& outcome) {
  if (outcome.ok) {
    spdlog::info(
        "job {}: succeeded{}", outcome.job_id,
        outcome.backup_id.empty() ? "" : " (backup " + outcome.backup_id + ")");
  } else {
    spdlog::warn("job {}: {}", outcome.job_id, outcome.error);
  }
  std::lock_guard<std::mutex> lock(write_mu_);
  pending_results_.push_back(JobResultToProto(outcome));
  FlushResultsLocked();
}

void ControlClient::HandleCommand(const v1::ServerCommand& command,
                                  JobRunner* runner) {
  auto submit = [&](AgentJob job, const char* kind) {
    const uint64_t id = JobIdOf(job);
    spdlog::info("job {}: {} command received", id, kind);
    if (runner->Submit(std::move(job))) return;
    for (uint64_t active : runner->ActiveJobIds()) {
      if (active == id) {
        spdlog::info("job {}: already running or queued; duplicate ignored",
                     id);
        return;
      }
    }
    JobOutcome refused;
    refused.job_id = id;
    refused.error = "the agent is shutting down";
    ReportResult(refused);
  };
  switch (command.kind_case()) {
    case v1::ServerCommand::kBackup:
      SendProfile();  // the backup records the profile current at its start
      submit(BackupJobFromProto(command.backup()), "backup");
      break;
    case v1::ServerCommand::kRestore:
      submit(RestoreJobFromProto(command.restore()), "restore");
      break;
    case v1::ServerCommand::kFileRestore:
      submit(FileRestoreJobFromProto(command.file_restore()), "file restore");
      break;
    case v1::ServerCommand::kCancel:
      if (runner->Cancel(command.cancel().job_id())) {
        spdlog::info("job {}: cancelling", command.cancel().job_id());
      } else {
        spdlog::info("job {}: cancel for a job this agent does not run",
                     command.cancel().job_id());
      }
      break;
    case v1::ServerCommand::kHeartbeat:
      break;
    case v1::ServerCommand::kProfileRequest:
      SendProfile();
      break;
    default:
      spdlog::warn("ignoring an unknown command from the server");
      break;
  }
}

bool ControlClient::RunStream(JobRunner* runner) {
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->Connect(&context);
  const auto started = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> state(state_mu_);
    stream_ended_ = false;
    server_heartbeats_ = false;
    server_interval_ = std::chrono::milliseconds(0);
    heard_anything_ = false;
    last_heard_ = started;
  }
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_version(options_.version);
    hello.mutable_hello()->set_hostname(options_.hostname);
    for (uint64_t id : runner->ActiveJobIds()) {
      hello.mutable_hello()->add_running_job_ids(id);
    }
    if (stream->Write(hello)) {
      stream_ = stream.get();
      context_ = &context;
      writes_done_ = false;
      streams_opened_.fetch_add(1);
      FlushResultsLocked();
      // A Shutdown() that ran after Run() last looked at stopping_ found no
      // stream to half-close; this one must not stay open until the
      // heartbeat thread cancels it. (Shutdown sets stopping_ under
      // write_mu_, so it either saw this stream or is seen here.)
      if (IsStopping()) HalfCloseLocked();
    }
  }
  SendProfile();

  // Heartbeats, silence detection and the shutdown grace period.
  std::thread heartbeat([&] {
    std::unique_lock<std::mutex> state(state_mu_);
    auto next_beat = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point cancel_at{};
    for (;;) {
      auto wake = next_beat;
      if (stopping_ && cancel_at.time_since_epoch().count() != 0) {
        wake = std::min(wake, cancel_at);
      }
      state_cv_.wait_until(state, wake);
      if (stream_ended_) return;
      auto now = std::chrono::steady_clock::now();
      if (stopping_) {
        if (cancel_at.time_since_epoch().count() == 0) {
          cancel_at = now + options_.shutdown_grace;
        } else if (now >= cancel_at) {
          context.TryCancel();
          return;
        }
      }
      if (now < next_beat) continue;
      next_beat = now + options_.heartbeat_interval;
      const bool silent =
          server_heartbeats_ &&
          now - last_heard_ >
              options_.silence_intervals *
                  std::max<std::chrono::milliseconds>(
                      options_.heartbeat_interval, server_interval_);
      state.unlock();
      if (silent) {
        spdlog::warn(
            "no word from the server for {} heartbeat intervals; "
            "reconnecting",
            options_.silence_intervals);
        context.TryCancel();
      } else {
        v1::AgentMessage beat;
        beat.mutable_heartbeat()->set_sent_unix_us(
            absl::ToUnixMicros(absl::Now()));
        std::lock_guard<std::mutex> lock(write_mu_);
        WriteLocked(beat);
      }
      state.lock();
    }
  });

  v1::ServerCommand command;
  while (stream->Read(&command)) {
    {
      std::lock_guard<std::mutex> state(state_mu_);
      last_heard_ = std::chrono::steady_clock::now();
      heard_anything_ = true;
      if (command.has_heartbeat()) {
        server_heartbeats_ = true;
        server_interval_ =
            std::chrono::milliseconds(command.heartbeat().interval_ms());
      }
    }
    HandleCommand(command, runner);
  }
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    stream_ = nullptr;
    context_ = nullptr;
  }
  bool heard;
  {
    std::lock_guard<std::mutex> state(state_mu_);
    stream_ended_ = true;
    heard = heard_anything_;
  }
  state_cv_.notify_all();
  heartbeat.join();
  grpc::Status status = stream->Finish();
  bool stopping;
  {
    std::lock_guard<std::mutex> state(state_mu_);
    stopping = stopping_;
  }
  const auto lasted = std::chrono::steady_clock::now() - started;
  if (stopping) {
    spdlog::info("command stream closed");
  } else if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
             status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    spdlog::error(
        "the server refused this agent: {} (revoked? re-enroll "
        "with `cairn-agent enroll`)",
        status.error_message());
  } else {
    spdlog::warn("command stream ended: {} ({})", status.error_message(),
                 static_cast<int>(status.error_code()));
  }
  return heard || lasted >= options_.healthy_after;
}

// gRPC's synchronous API moves a channel's connection attempt forward only
// while some thread waits inside a call or a state watch, and a call made
// while the channel is in TRANSIENT_FAILURE fails at once instead of waiting
// for the attempt in progress. Without this wait an agent whose server had
// been down long enough never came back: every Connect failed at once with
// the previous attempt's error, and the channel's own TLS handshakes, polled
// only by gRPC's 5 s backup poller, hit the connect timeout ("handshaker
// shutdown"). WaitForConnected polls while it waits.
void ControlClient::WaitForChannel() {
  const auto until = std::chrono::system_clock::now() + options_.connect_wait;
  for (;;) {
    {
      std::lock_guard<std::mutex> state(state_mu_);
      if (stopping_) return;
    }
    const auto now = std::chrono::system_clock::now();
    if (now >= until) return;
    if (channel_->WaitForConnected(
            std::min(until, now + std::chrono::milliseconds(250)))) {
      return;
    }
  }
}

void ControlClient::Run(JobRunner* runner) {
  uint64_t seed = options_.seed;
  if (seed == 0) seed = std::random_device{}();
  ReconnectBackoff backoff(options_.backoff, seed);
  for (;;) {
    if (IsStopping()) return;
    WaitForChannel();
    // WaitForChannel also returns when Shutdown() is called: open no new
    // stream then (it would register this agent with the server again, and
    // the server could hand it jobs, while the daemon is stopping).
    if (IsStopping()) return;
    if (RunStream(runner)) backoff.Reset();
    auto delay = backoff.NextDelay();
    std::unique_lock<std::mutex> state(state_mu_);
    if (stopping_) return;
    spdlog::info("reconnecting in {} ms", delay.count());
    state_cv_.wait_for(state, delay, [&] { return stopping_; });
  }
}

void ControlClient::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    {
      std::lock_guard<std::mutex> state(state_mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    HalfCloseLocked();
  }
  state_cv_.notify_all();
}

}  // namespace cairn
