// ControlClient: the agent's end of AgentControl.Connect, the long-lived
// command stream to the storage manager (proto/cairn/v1/agent.proto). A thin
// layer: it converts ServerCommands into jobs for a JobRunner and the
// runner's reports into AgentMessages; the job logic lives in
// agent/job_runner.h and the retry timing in agent/reconnect_backoff.h.
//
// Per stream: Hello first (with the ids of jobs still running from an
// earlier stream), then a Heartbeat every `heartbeat_interval`, progress and
// results as jobs produce them. Results that could not be written (no
// stream) are kept and sent, in order, right after the next Hello.
//
// A dead peer: a failed write ends the stream; and once the server has sent
// a heartbeat on a stream, `silence_intervals` heartbeat intervals without
// any message from it end the stream too. gRPC keepalive pings on the
// channel (MakeControlChannel) catch a silent half-open TCP connection.
// Whenever the stream ends, the client dials again after
// ReconnectBackoff::NextDelay(); a stream that lasted `healthy_after` or
// received anything from the server resets the backoff.
//
// Shutdown(): no more reconnects and no new stream; the current stream is
// half-closed (WritesDone) so the server sees everything sent so far, and
// cancelled if the server has not ended it within `shutdown_grace`. A stream
// that was being opened when Shutdown() was called is half-closed as soon as
// its Hello has gone out.
//
// Thread safety: thread-safe. Run() is called once, from one thread.
#ifndef CAIRN_AGENT_CONTROL_CLIENT_H_
#define CAIRN_AGENT_CONTROL_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "agent/job_runner.h"
#include "agent/reconnect_backoff.h"
#include "cairn/v1/agent.grpc.pb.h"

namespace cairn {

struct ControlClientOptions {
  std::string hostname;  // reported in Hello
  std::string version = "0.1.0";
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(10)};
  int silence_intervals = 3;
  BackoffPolicy backoff;
  uint64_t seed = 0;  // jitter seed; 0: random
  std::chrono::milliseconds healthy_after{std::chrono::seconds(10)};
  std::chrono::milliseconds shutdown_grace{std::chrono::seconds(5)};
  // Longest wait for the channel to connect before each Connect.
  std::chrono::milliseconds connect_wait{std::chrono::seconds(10)};
  // The machine's hardware profile, sent after every Hello and when a
  // backup job arrives (empty: none is sent; an error is logged and
  // nothing is sent). Called from the stream's reader thread.
  std::function<StatusOr<v1::ProfileReport>()> profile_source;
};

// A channel to the storage manager for the control stream: mutual TLS
// `creds`, 4 MiB message limits, keepalive pings.
std::shared_ptr<grpc::Channel> MakeControlChannel(
    const std::string& server_address,
    std::shared_ptr<grpc::ChannelCredentials> creds);

class ControlClient final : public JobReporter {
 public:
  ControlClient(std::shared_ptr<grpc::Channel> channel,
                ControlClientOptions options);
  ~ControlClient() override;

  // Connects, serves commands, reconnects; returns after Shutdown() once
  // the current stream has ended. `runner` is not owned.
  void Run(JobRunner* runner);
  // Asks Run() to finish (see the top of this file). Does not block.
  void Shutdown();

  // JobReporter
  void ReportProgress(const JobProgressUpdate& update) override;
  void ReportResult(const JobOutcome& outcome) override;

  // For logs and tests.
  uint64_t streams_opened() const { return streams_opened_.load(); }
  bool connected() const;

 private:
  using Stream = grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerCommand>;
  // One stream from Connect to its end; returns whether it was healthy.
  bool RunStream(JobRunner* runner);
  // Waits until the channel is READY, Shutdown() is called or
  // `connect_wait` has passed (see the comment in the .cc file).
  void WaitForChannel();
  void HandleCommand(const v1::ServerCommand& command, JobRunner* runner);
  // Collects and sends the profile (options_.profile_source), if any.
  void SendProfile();
  // REQUIRES: write_mu_ held.
  bool WriteLocked(const v1::AgentMessage& message);
  // Half-closes the current stream, if any and not yet. REQUIRES: write_mu_
  // held.
  void HalfCloseLocked();
  // Whether Shutdown() has been called. Takes state_mu_.
  bool IsStopping() const;
  void FlushResultsLocked();

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::AgentControl::Stub> stub_;
  const ControlClientOptions options_;
  std::atomic<uint64_t> streams_opened_{0};

  // The current stream. Lock order: write_mu_, then state_mu_.
  mutable std::mutex write_mu_;
  Stream* stream_ = nullptr;                   // guarded by write_mu_
  grpc::ClientContext* context_ = nullptr;     // guarded by write_mu_
  bool writes_done_ = false;                   // guarded by write_mu_
  std::deque<v1::JobResult> pending_results_;  // guarded by write_mu_

  mutable std::mutex state_mu_;
  std::condition_variable state_cv_;
  bool stopping_ = false;                             // guarded by state_mu_
  bool stream_ended_ = false;                         // guarded by state_mu_
  std::chrono::steady_clock::time_point last_heard_;  // guarded by state_mu_
  bool server_heartbeats_ = false;                    // guarded by state_mu_
  // The server's heartbeat interval from its heartbeats (0: not said).
  std::chrono::milliseconds server_interval_{0};  // guarded by state_mu_
  bool heard_anything_ = false;                   // guarded by state_mu_
};

// Conversions between the wire and the runner's domain types.
AgentJob BackupJobFromProto(const v1::BackupCommand& command);
AgentJob RestoreJobFromProto(const v1::RestoreCommand& command);
AgentJob FileRestoreJobFromProto(const v1::FileRestoreCommand& command);
v1::JobResult JobResultToProto(const JobOutcome& outcome);

}  // namespace cairn

#endif  // CAIRN_AGENT_CONTROL_CLIENT_H_
