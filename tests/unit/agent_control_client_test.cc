// The agent's command stream against a fake AgentControl server over mutual
// TLS on loopback: Hello first, commands reach the JobRunner, results and
// heartbeats come back, a broken stream is redialled (with the running jobs
// in the new Hello), Shutdown half-closes the stream so Run returns, and a
// Shutdown while the channel is still connecting opens no stream.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "agent/control_client.h"
#include "common/tls.h"
#include "server/certificate_authority.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

// Every job fails at once: this test is about the stream, not the data path.
class NoMediaConnector final : public MediaConnector {
 public:
  StatusOr<std::unique_ptr<MediaLink>> Connect(
      const MediaSessionSpec&) override {
    return absl::UnavailableError("no media agent in this test");
  }
};

// Stream 1: sends a backup command, waits for its result, then breaks the
// stream. Stream 2: sends a heartbeat, waits for one from the agent, then
// serves until the agent half-closes.
class FakeAgentControl final : public v1::AgentControl::Service {
 public:
  grpc::Status Connect(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::ServerCommand, v1::AgentMessage>* stream)
      override {
    v1::AgentMessage msg;
    if (!stream->Read(&msg) || !msg.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello first");
    }
    int n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hellos_.push_back(msg.hello());
      n = static_cast<int>(hellos_.size());
    }
    cv_.notify_all();
    if (n == 1) {
      v1::ServerCommand cmd;
      cmd.mutable_backup()->set_job_id(5);
      cmd.mutable_backup()->set_source_path("/dev/null");
      cmd.mutable_backup()->set_backup_id("pc1-b5");
      cmd.mutable_backup()->mutable_media()->set_ticket("t");
      stream->Write(cmd);
      while (stream->Read(&msg)) {
        if (msg.has_result()) {
          std::lock_guard<std::mutex> lock(mu_);
          results_.push_back(msg.result());
          break;
        }
      }
      cv_.notify_all();
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "going away");
    }
    v1::ServerCommand beat;
    beat.mutable_heartbeat()->set_sent_unix_us(1);
    stream->Write(beat);
    while (stream->Read(&msg)) {
      if (msg.has_heartbeat()) {
        std::lock_guard<std::mutex> lock(mu_);
        ++heartbeats_;
        cv_.notify_all();
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      half_closed_ = true;
    }
    cv_.notify_all();
    return grpc::Status::OK;
  }

  template <typename Pred>
  bool WaitFor(Pred pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return pred(); });
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::Hello> hellos_;
  std::vector<v1::JobResult> results_;
  int heartbeats_ = 0;
  bool half_closed_ = false;
};

// A test CA with server credentials and an agent's ("pc1") channel
// credentials.
struct TestPki {
  void Init() {
    auto ca = CertificateAuthority::Create(dir.Sub("ca"), "Cairn test CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    auto server_cert = (*ca)->IssueServerCertificate({}, {});
    ASSERT_TRUE(server_cert.ok());
    auto s = MakeServerCredentials(
        {(*ca)->CertificatePem(), server_cert->cert_pem, server_cert->key_pem});
    ASSERT_TRUE(s.ok()) << s.status();
    server_creds = *s;
    auto csr = CreateKeyAndCsr("pc1");
    ASSERT_TRUE(csr.ok()) << csr.status();
    auto cert = (*ca)->SignCsr(csr->csr_pem, "pc1", Role::kAgent);
    ASSERT_TRUE(cert.ok()) << cert.status();
    auto c =
        MakeChannelCredentials({(*ca)->CertificatePem(), *cert, csr->key_pem});
    ASSERT_TRUE(c.ok()) << c.status();
    agent_creds = *c;
  }
  testing::ScratchDir dir;
  std::shared_ptr<grpc::ServerCredentials> server_creds;
  std::shared_ptr<grpc::ChannelCredentials> agent_creds;
};

TEST(AgentControlClientTest, HelloCommandsResultsReconnectAndShutdown) {
  TestPki pki;
  ASSERT_NO_FATAL_FAILURE(pki.Init());
  FakeAgentControl service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", pki.server_creds, &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto creds = pki.agent_creds;

  ControlClientOptions o;
  o.hostname = "pc1.lan";
  o.heartbeat_interval = std::chrono::milliseconds(20);
  o.backoff.initial_delay = std::chrono::milliseconds(10);
  o.backoff.max_delay = std::chrono::milliseconds(50);
  o.seed = 1;
  ControlClient client(
      MakeControlChannel("localhost:" + std::to_string(port), creds), o);
  NoMediaConnector connector;
  JobRunner runner(&connector, &client, {"pc1", 1, std::chrono::seconds(1)});
  std::thread run([&] { client.Run(&runner); });

  // Stream 1: the backup command runs and its (failed) result comes back.
  ASSERT_TRUE(service.WaitFor([&] { return !service.results_.empty(); }));
  // Stream 2: the agent redialled by itself, and heartbeats flow.
  ASSERT_TRUE(service.WaitFor(
      [&] { return service.hellos_.size() == 2 && service.heartbeats_ > 0; }));
  EXPECT_TRUE(client.connected());
  client.Shutdown();
  run.join();  // Run returns once the server has ended the stream
  EXPECT_TRUE(service.WaitFor([&] { return service.half_closed_; }));
  runner.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));

  std::lock_guard<std::mutex> lock(service.mu_);
  EXPECT_EQ(service.hellos_[0].hostname(), "pc1.lan");
  EXPECT_FALSE(service.hellos_[0].version().empty());
  EXPECT_EQ(service.hellos_[1].running_job_ids_size(), 0);
  ASSERT_EQ(service.results_.size(), 1u);
  EXPECT_EQ(service.results_[0].job_id(), 5u);
  EXPECT_FALSE(service.results_[0].ok());
  EXPECT_NE(service.results_[0].error().find("no media agent in this test"),
            std::string::npos)
      << service.results_[0].error();
  EXPECT_GE(client.streams_opened(), 2u);
}

// Sends one heartbeat (announcing `interval_ms`) after each Hello and then
// stays silent until the agent gives up on the stream.
class QuietServer final : public v1::AgentControl::Service {
 public:
  explicit QuietServer(uint32_t interval_ms) : interval_ms_(interval_ms) {}
  grpc::Status Connect(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::ServerCommand, v1::AgentMessage>* stream)
      override {
    v1::AgentMessage msg;
    if (!stream->Read(&msg) || !msg.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello first");
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++hellos_;
    }
    cv_.notify_all();
    v1::ServerCommand beat;
    beat.mutable_heartbeat()->set_sent_unix_us(1);
    beat.mutable_heartbeat()->set_interval_ms(interval_ms_);
    stream->Write(beat);
    while (stream->Read(&msg)) {
    }
    return grpc::Status::OK;
  }
  // Whether the agent dialled `n` streams within `timeout`.
  bool WaitForHellos(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return hellos_ >= n; });
  }

 private:
  const uint32_t interval_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  int hellos_ = 0;
};

// An agent beating every 20 ms waits for silence over 3 of the SERVER's
// intervals when the server says it beats less often, and over its own
// otherwise (before the fix, an agent with a short interval redialled a
// server with the default 10 s one every few seconds).
TEST(AgentControlClientTest, SilenceIsJudgedByTheLongerHeartbeatInterval) {
  TestPki pki;
  ASSERT_NO_FATAL_FAILURE(pki.Init());
  for (uint32_t server_interval_ms : {60'000u, 0u}) {
    QuietServer service(server_interval_ms);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", pki.server_creds, &port);
    builder.RegisterService(&service);
    auto server = builder.BuildAndStart();
    ASSERT_NE(server, nullptr);
    ControlClientOptions o;
    o.heartbeat_interval = std::chrono::milliseconds(20);
    o.backoff.initial_delay = std::chrono::milliseconds(10);
    o.backoff.max_delay = std::chrono::milliseconds(50);
    ControlClient client(MakeControlChannel("localhost:" + std::to_string(port),
                                            pki.agent_creds),
                         o);
    NoMediaConnector connector;
    JobRunner runner(&connector, &client, {"pc1", 1, std::chrono::seconds(1)});
    std::thread run([&] { client.Run(&runner); });
    ASSERT_TRUE(service.WaitForHellos(1, std::chrono::seconds(30)));
    if (server_interval_ms > 0) {
      // 3 x 60 s of patience: no second stream in a second (50 of the
      // agent's own intervals).
      EXPECT_FALSE(service.WaitForHellos(2, std::chrono::seconds(1)));
    } else {
      // The server said nothing about its interval: the agent's own 3 x
      // 20 ms apply and it redials.
      EXPECT_TRUE(service.WaitForHellos(2, std::chrono::seconds(30)));
    }
    client.Shutdown();
    run.join();
    runner.Stop();
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
  }
}

// A loopback TCP port whose connections complete (in the kernel's accept
// queue) but are never answered: a TLS handshake with it hangs, so a channel
// to it stays CONNECTING.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }
  // Whether a connection is waiting to be accepted within `timeout`.
  bool WaitForConnection(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// SIGTERM while the agent is (re)connecting: Run must return at once and
// must not open a stream after Shutdown (it would register the agent with
// the server again while the daemon stops).
TEST(AgentControlClientTest, ShutdownWhileConnectingOpensNoStream) {
  TestPki pki;
  ASSERT_NO_FATAL_FAILURE(pki.Init());
  SilentListener listener;
  ASSERT_NE(listener.port(), 0);

  ControlClientOptions o;
  o.connect_wait = std::chrono::seconds(60);
  o.shutdown_grace = std::chrono::seconds(60);
  ControlClient client(
      MakeControlChannel("127.0.0.1:" + std::to_string(listener.port()),
                         pki.agent_creds),
      o);
  NoMediaConnector connector;
  JobRunner runner(&connector, &client, {"pc1", 1, std::chrono::seconds(1)});
  std::thread run([&] { client.Run(&runner); });
  // The channel is dialling the listener: Run is waiting for it.
  ASSERT_TRUE(listener.WaitForConnection(std::chrono::seconds(30)));
  const auto shutdown_at = std::chrono::steady_clock::now();
  client.Shutdown();
  run.join();
  // Not after a connect timeout or `shutdown_grace`.
  EXPECT_LT(std::chrono::steady_clock::now() - shutdown_at,
            std::chrono::seconds(5));
  EXPECT_EQ(client.streams_opened(), 0u);
  EXPECT_FALSE(client.connected());
  runner.Stop();
}

TEST(AgentControlClientTest, ConvertsCommandsAndResults) {
  v1::BackupCommand b;
  b.set_job_id(3);
  b.set_source_path("/dev/sda");
  b.set_backup_id("pc1-b3");
  b.set_parent_backup_id("pc1-b2");
  b.set_chunk_size(1 << 20);
  b.set_zstd_level(3);
  b.mutable_media()->set_address("m:1");
  b.mutable_media()->set_ticket("tk");
  b.mutable_media()->set_data_key(std::string(32, 'k'));
  auto job = std::get<BackupJob>(BackupJobFromProto(b));
  EXPECT_EQ(job.job_id, 3u);
  EXPECT_EQ(job.parent_backup_id, "pc1-b2");
  EXPECT_EQ(job.chunk_size, 1u << 20);
  EXPECT_EQ(job.zstd_level, 3);
  EXPECT_EQ(job.media.address, "m:1");
  EXPECT_EQ(job.media.data_key.size(), 32u);

  v1::RestoreCommand r;
  r.set_job_id(4);
  r.set_backup_id("pc1-b3");
  r.set_target_path("/tmp/x");
  auto restore = std::get<RestoreJob>(RestoreJobFromProto(r));
  EXPECT_EQ(restore.target_path, "/tmp/x");
  EXPECT_TRUE(restore.media.address.empty());  // embedded media

  JobOutcome o;
  o.job_id = 3;
  o.ok = true;
  o.backup_id = "pc1-b3";
  o.chunks_deduplicated = 9;
  v1::JobResult p = JobResultToProto(o);
  EXPECT_TRUE(p.ok());
  EXPECT_EQ(p.backup_id(), "pc1-b3");
  EXPECT_EQ(p.chunks_deduplicated(), 9u);
}

}  // namespace
}  // namespace cairn
