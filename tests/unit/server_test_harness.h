// Test harness for cairn-server: a real StorageManager on 127.0.0.1 port 0
// with a fresh state directory, credentials for any identity and role, and a
// FakeAgent that drives AgentControl.Connect by hand.
#ifndef CAIRN_TESTS_UNIT_SERVER_TEST_HARNESS_H_
#define CAIRN_TESTS_UNIT_SERVER_TEST_HARNESS_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cairn/v1/admin.grpc.pb.h"
#include "cairn/v1/agent.grpc.pb.h"
#include "common/tls.h"
#include "server/catalog.h"
#include "server/certificate_authority.h"
#include "server/server_home.h"
#include "server/storage_manager.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {

inline constexpr auto kRpcDeadline = std::chrono::seconds(20);

inline void SetDeadline(grpc::ClientContext* ctx,
                        std::chrono::seconds d = kRpcDeadline) {
  ctx->set_deadline(std::chrono::system_clock::now() + d);
}

// A fake client agent: one Connect stream driven by the test. A reader
// thread queues the commands the server sends (heartbeats dropped).
class FakeAgent {
 public:
  FakeAgent(std::shared_ptr<grpc::Channel> channel,
            std::vector<uint64_t> running = {})
      : stub_(v1::AgentControl::NewStub(std::move(channel))) {
    SetDeadline(&ctx_, std::chrono::seconds(60));
    stream_ = stub_->Connect(&ctx_);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_version("test");
    for (uint64_t id : running) hello.mutable_hello()->add_running_job_ids(id);
    stream_->Write(hello);
    reader_ = std::thread([this] { ReadLoop(); });
  }
  ~FakeAgent() { Close(); }

  // The next non-heartbeat command, or nullopt if the stream ended or
  // `timeout` passed.
  std::optional<v1::ServerCommand> NextCommand(
      std::chrono::seconds timeout = std::chrono::seconds(20)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || ended_; });
    if (queue_.empty()) return std::nullopt;
    v1::ServerCommand c = std::move(queue_.front());
    queue_.pop_front();
    return c;
  }
  // Waits until the server ends the stream; returns its status.
  grpc::Status WaitEnded(
      std::chrono::seconds timeout = std::chrono::seconds(20)) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return ended_; })) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "still open");
    }
    return status_;
  }

  bool Progress(uint64_t job, uint64_t done, uint64_t total) {
    v1::AgentMessage m;
    m.mutable_progress()->set_job_id(job);
    m.mutable_progress()->set_done_bytes(done);
    m.mutable_progress()->set_total_bytes(total);
    return stream_->Write(m);
  }
  bool Result(const v1::JobResult& r) {
    v1::AgentMessage m;
    *m.mutable_result() = r;
    return stream_->Write(m);
  }
  bool Write(const v1::AgentMessage& m) { return stream_->Write(m); }

  // Drops the connection (as a killed agent would).
  void Close() {
    if (reader_.joinable()) {
      ctx_.TryCancel();
      reader_.join();
    }
  }

 private:
  void ReadLoop() {
    v1::ServerCommand c;
    while (stream_->Read(&c)) {
      if (c.has_heartbeat()) continue;
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(c);
      cv_.notify_all();
    }
    grpc::Status s = stream_->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    status_ = s;
    ended_ = true;
    cv_.notify_all();
  }

  std::unique_ptr<v1::AgentControl::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerCommand>>
      stream_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::ServerCommand> queue_;
  bool ended_ = false;
  grpc::Status status_;
};

class ServerTest : public ::testing::Test {
 protected:
  // Initializes a state directory and starts a server on port 0.
  void StartServer(bool embedded_media = false, bool encrypt = false) {
    if (!initialized_) {
      InitOptions init;
      init.dir = home();
      init.encrypt = encrypt;
      auto report = InitServerHome(init);
      ASSERT_TRUE(report.ok()) << report.status();
      initialized_ = true;
    }
    StorageManagerOptions o;
    o.dir = home();
    o.listen = "127.0.0.1:0";
    o.embedded_media = embedded_media;
    o.store = dir_.Sub("store");
    o.shutdown_grace = std::chrono::seconds(5);
    o.reconnect_grace = reconnect_grace_;
    auto server = StorageManager::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    address_ = "localhost:" + std::to_string(server_->port());
  }
  void StopServer() {
    if (server_) {
      ASSERT_TRUE(server_->Shutdown().ok());
      server_.reset();
    }
  }
  void TearDown() override { StopServer(); }

  std::string home() const { return dir_.Sub("home"); }
  Catalog* catalog() { return server_->catalog(); }

  // A certificate from the server's CA for `identity` with `role`.
  TlsFiles CredsFor(const std::string& identity, Role role) {
    auto csr = CreateKeyAndCsr(identity);
    EXPECT_TRUE(csr.ok()) << csr.status();
    auto cert = server_->ca().SignCsr(csr->csr_pem, identity, role);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return {server_->ca().CertificatePem(), *cert, csr->key_pem};
  }
  std::shared_ptr<grpc::Channel> Channel(const TlsFiles& files) {
    auto creds = MakeChannelCredentials(files);
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kServerMaxMessageBytes);
    args.SetMaxSendMessageSize(kServerMaxMessageBytes);
    return grpc::CreateCustomChannel(address_, *creds, args);
  }
  std::shared_ptr<grpc::Channel> AdminChannel() {
    auto files = ReadTlsFiles(home() + "/admin");
    EXPECT_TRUE(files.ok()) << files.status();
    return Channel(*files);
  }
  std::unique_ptr<v1::Admin::Stub> AdminStub() {
    return v1::Admin::NewStub(AdminChannel());
  }
  std::shared_ptr<grpc::Channel> EnrollmentChannel() {
    auto creds =
        MakeEnrollmentChannelCredentials(server_->ca().CertificatePem());
    EXPECT_TRUE(creds.ok()) << creds.status();
    return grpc::CreateChannel(address_, *creds);
  }

  grpc::Status Enroll(const std::string& token, const std::string& hostname,
                      v1::Role role, v1::EnrollResponse* response,
                      std::string* key_pem, const std::string& address = "") {
    auto csr = CreateKeyAndCsr("enrolling");  // the CA ignores the subject
    EXPECT_TRUE(csr.ok()) << csr.status();
    *key_pem = csr->key_pem;
    v1::EnrollRequest req;
    req.set_token(token);
    req.set_hostname(hostname);
    req.set_csr_pem(csr->csr_pem);
    req.set_role(role);
    req.set_address(address);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return v1::AgentControl::NewStub(EnrollmentChannel())
        ->Enroll(&ctx, req, response);
  }

  // Enrolls `hostname` as a client agent through the real RPCs; returns its
  // credentials.
  TlsFiles EnrollAgent(const std::string& hostname) {
    auto token = catalog()->CreateToken(Role::kAgent, 600'000'000, "test");
    EXPECT_TRUE(token.ok()) << token.status();
    v1::EnrollResponse resp;
    std::string key;
    grpc::Status s =
        Enroll(token->token, hostname, v1::ROLE_AGENT, &resp, &key);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.ca_certificate_pem(), resp.certificate_pem(), key};
  }

  // Streams WatchJob until the job ends; returns its last state.
  v1::JobInfo WatchUntilDone(uint64_t job_id) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::GetJobRequest req;
    req.set_job_id(job_id);
    auto stub = AdminStub();
    auto reader = stub->WatchJob(&ctx, req);
    v1::JobInfo info, last;
    while (reader->Read(&info)) last = info;
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return last;
  }

  v1::JobInfo StartBackup(const std::string& client, bool incremental = false,
                          const std::string& source = "/dev/sda") {
    v1::StartBackupRequest req;
    req.set_client_id(client);
    req.set_source_path(source);
    req.set_incremental(incremental);
    v1::JobInfo job;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = AdminStub()->StartBackup(&ctx, req, &job);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return job;
  }

  ScratchDir dir_;
  bool initialized_ = false;
  // Short, so that tests of a dropped agent do not wait a minute.
  std::chrono::milliseconds reconnect_grace_ = std::chrono::milliseconds(300);
  std::unique_ptr<StorageManager> server_;
  std::string address_;
};

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_UNIT_SERVER_TEST_HARNESS_H_
