// The agent command stream and the job engine over real gRPC with mutual
// TLS on loopback: a fake agent loop drives AgentControl.Connect by hand
// (and, in the last test, runs the real backup pipeline and restore through
// RemoteMedia against the embedded media service).
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/backup_pipeline.h"
#include "agent/image_restore.h"
#include "agent/remote_media.h"
#include "common/chunk_format.h"
#include "common/commit_receipt.h"
#include "common/hardware_profile.h"
#include "common/image_reader.h"
#include "common/session_ticket.h"
#include "server/job_engine.h"
#include "tests/unit/server_test_harness.h"

namespace cairn {
namespace {

using testing::FakeAgent;
using testing::SetDeadline;

class ServerAgentStreamTest : public testing::ServerTest {
 protected:
  // Enrolls "media-1" through the real Enroll RPC (role media), as
  // `cairn-media enroll` does; keeps its key to sign commit receipts.
  void UseRemoteMedia() {
    auto token = catalog()->CreateToken(Role::kMedia, 600'000'000, "test");
    ASSERT_TRUE(token.ok()) << token.status();
    v1::EnrollResponse resp;
    grpc::Status s = Enroll(token->token, "media-1", v1::ROLE_MEDIA, &resp,
                            &media_key_, "media-1.example:7444");
    ASSERT_TRUE(s.ok()) << s.error_message();
    auto tls = ReadTlsFiles(home() + "/tls");
    ASSERT_TRUE(tls.ok());
    EXPECT_EQ(resp.ticket_signer_pem(), tls->cert_pem);
    auto media = catalog()->GetMediaAgent("media-1");
    ASSERT_TRUE(media.ok()) << media.status();
    EXPECT_EQ(media->cert_pem, resp.certificate_pem());
  }
  // What media-1 signs when it commits `b` (image size 1 MiB).
  CommitReceipt ReceiptFor(const v1::BackupCommand& b) {
    CommitReceipt r;
    r.media_id = "media-1";
    r.client_id = VerifiedTicket(b.media().ticket()).client_id;
    r.job_id = b.job_id();
    r.backup_id = b.backup_id();
    r.manifest_sha256 = ManifestDigest("manifest");
    r.image_size = 1 << 20;
    return r;
  }
  std::string Signed(const CommitReceipt& r) {
    if (media_key_.empty()) return "";  // the embedded media agent signs none
    auto s = SignCommitReceipt(r, media_key_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.value_or("");
  }
  SessionTicket VerifiedTicket(const std::string& signed_ticket) {
    auto tls = ReadTlsFiles(home() + "/tls");
    EXPECT_TRUE(tls.ok());
    auto t = VerifyTicket(signed_ticket, tls->cert_pem,
                          absl::ToUnixMicros(absl::Now()));
    EXPECT_TRUE(t.ok()) << t.status();
    return t.value_or(SessionTicket{});
  }
  v1::JobResult Ok(const v1::BackupCommand& b) {
    v1::JobResult r;
    r.set_job_id(b.job_id());
    r.set_ok(true);
    r.set_backup_id(b.backup_id());
    r.set_image_size(1 << 20);
    r.set_new_stored_bytes(4096);
    r.set_chunks_new(1);
    r.set_commit_receipt(Signed(ReceiptFor(b)));
    return r;
  }
  std::string media_key_;
  // Runs one backup job through `agent` to success; returns the command.
  v1::BackupCommand RunBackupJob(FakeAgent& agent, bool incremental) {
    v1::JobInfo job = StartBackup("pc1", incremental);
    auto cmd = agent.NextCommand();
    EXPECT_TRUE(cmd && cmd->has_backup());
    if (!cmd || !cmd->has_backup()) return {};
    EXPECT_EQ(cmd->backup().job_id(), job.job_id());
    EXPECT_TRUE(agent.Result(Ok(cmd->backup())));
    EXPECT_EQ(WatchUntilDone(job.job_id()).state(), "succeeded");
    return cmd->backup();
  }
};

TEST_F(ServerAgentStreamTest, BackupCommandProgressAndResultCommitTheBackup) {
  StartServer();
  UseRemoteMedia();
  FakeAgent agent(Channel(EnrollAgent("pc1")));
  v1::JobInfo job = StartBackup("pc1");

  auto cmd = agent.NextCommand();
  ASSERT_TRUE(cmd.has_value());
  ASSERT_TRUE(cmd->has_backup());
  const v1::BackupCommand& b = cmd->backup();
  EXPECT_EQ(b.job_id(), job.job_id());
  EXPECT_EQ(b.source_path(), "/dev/sda");
  EXPECT_EQ(b.backup_id().rfind("pc1-", 0), 0u) << b.backup_id();
  EXPECT_TRUE(ValidateBackupId(b.backup_id()).ok());
  EXPECT_TRUE(b.parent_backup_id().empty());
  EXPECT_EQ(b.chunk_size(), 4u << 20);
  EXPECT_EQ(b.media().address(), "media-1.example:7444");
  EXPECT_TRUE(b.media().data_key().empty());  // no --encrypt
  SessionTicket t = VerifiedTicket(b.media().ticket());
  EXPECT_EQ(t.operation, SessionTicket::Operation::kBackup);
  EXPECT_EQ(t.client_id, "pc1");
  EXPECT_EQ(t.job_id, job.job_id());
  EXPECT_EQ(t.backup_id, b.backup_id());
  EXPECT_EQ(t.media_id, "media-1");
  EXPECT_GT(t.expires_unix_us,
            absl::ToUnixMicros(absl::Now() + absl::Hours(11)));
  EXPECT_EQ(catalog()->GetJob(job.job_id())->state, JobState::kRunning);

  // Progress shows up in WatchJob; then the result ends the job.
  grpc::ClientContext watch_ctx;
  SetDeadline(&watch_ctx);
  v1::GetJobRequest wreq;
  wreq.set_job_id(job.job_id());
  auto stub = AdminStub();
  auto watch = stub->WatchJob(&watch_ctx, wreq);
  v1::JobInfo info;
  ASSERT_TRUE(watch->Read(&info));
  EXPECT_EQ(info.state(), "running");
  ASSERT_TRUE(agent.Progress(job.job_id(), 512, 1 << 20));
  do {
    ASSERT_TRUE(watch->Read(&info));
  } while (info.done_bytes() != 512);
  EXPECT_EQ(info.total_bytes(), 1u << 20);

  ASSERT_TRUE(agent.Result(Ok(b)));
  while (watch->Read(&info)) {
  }
  ASSERT_TRUE(watch->Finish().ok());
  EXPECT_EQ(info.state(), "succeeded");
  EXPECT_EQ(info.backup_id(), b.backup_id());

  auto backup = catalog()->GetBackup(b.backup_id());
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_EQ(backup->client_id, "pc1");
  EXPECT_EQ(backup->media_agent_id, "media-1");
  EXPECT_EQ(backup->kind, BackupKind::kFull);
  EXPECT_EQ(backup->image_size, 1u << 20);
  EXPECT_EQ(backup->job_id, job.job_id());

  v1::ListBackupsResponse list;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ASSERT_TRUE(AdminStub()->ListBackups(&ctx, {}, &list).ok());
  ASSERT_EQ(list.backups_size(), 1);
  EXPECT_EQ(list.backups(0).backup_id(), b.backup_id());
}

TEST_F(ServerAgentStreamTest, IncrementalNamesTheLatestBackupAsParent) {
  StartServer();
  UseRemoteMedia();
  FakeAgent agent(Channel(EnrollAgent("pc1")));
  v1::BackupCommand full = RunBackupJob(agent, /*incremental=*/false);
  v1::JobInfo job = StartBackup("pc1", /*incremental=*/true);
  auto cmd = agent.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_backup());
  EXPECT_EQ(cmd->backup().parent_backup_id(), full.backup_id());
  EXPECT_EQ(VerifiedTicket(cmd->backup().media().ticket()).parent_backup_id,
            full.backup_id());
  ASSERT_TRUE(agent.Result(Ok(cmd->backup())));
  EXPECT_EQ(WatchUntilDone(job.job_id()).state(), "succeeded");
  auto inc = catalog()->GetBackup(cmd->backup().backup_id());
  ASSERT_TRUE(inc.ok()) << inc.status();
  EXPECT_EQ(inc->kind, BackupKind::kIncremental);
  EXPECT_EQ(inc->parent_id, full.backup_id());
}

TEST_F(ServerAgentStreamTest, FailedResultFailsTheJobWithTheAgentsError) {
  StartServer();
  UseRemoteMedia();
  FakeAgent agent(Channel(EnrollAgent("pc1")));
  v1::JobInfo job = StartBackup("pc1");
  auto cmd = agent.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_backup());
  v1::JobResult r;
  r.set_job_id(job.job_id());
  r.set_ok(false);
  r.set_error("cannot open /dev/sda: permission denied");
  ASSERT_TRUE(agent.Result(r));
  v1::JobInfo done = WatchUntilDone(job.job_id());
  EXPECT_EQ(done.state(), "failed");
  EXPECT_EQ(done.error(), "cannot open /dev/sda: permission denied");
  EXPECT_TRUE(catalog()->ListBackups("pc1")->empty());
}

// A separate media agent's backup is recorded only with its signed receipt
// for exactly this job: missing, forged, or for another backup, the job
// fails and the catalog holds no backup.
TEST_F(ServerAgentStreamTest, SuccessNeedsTheMediaAgentsReceiptForTheJob) {
  StartServer();
  UseRemoteMedia();
  TlsFiles agent_creds = EnrollAgent("pc1");
  FakeAgent agent(Channel(agent_creds));
  struct Case {
    const char* name;
    std::function<void(const v1::BackupCommand&, v1::JobResult*)> mutate;
    const char* error;
  };
  const Case cases[] = {
      {"no receipt",
       [](const v1::BackupCommand&, v1::JobResult* r) {
         r->clear_commit_receipt();
       },
       "forwarded no commit receipt"},
      {"signed by the agent's own key",
       [&](const v1::BackupCommand& b, v1::JobResult* r) {
         auto s = SignCommitReceipt(ReceiptFor(b), agent_creds.key_pem);
         ASSERT_TRUE(s.ok());
         r->set_commit_receipt(*s);
       },
       "commit receipt signature does not verify"},
      {"another backup's receipt",
       [&](const v1::BackupCommand& b, v1::JobResult* r) {
         CommitReceipt other = ReceiptFor(b);
         other.backup_id = "pc1-19700101T000000Z-0000";
         r->set_commit_receipt(Signed(other));
       },
       "does not match job"},
      {"another size",
       [&](const v1::BackupCommand& b, v1::JobResult* r) {
         r->set_image_size(2 << 20);
       },
       "does not match job"},
      {"garbage",
       [](const v1::BackupCommand&, v1::JobResult* r) {
         r->set_commit_receipt("\x01\x02garbage");
       },
       "malformed commit receipt"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::JobInfo job = StartBackup("pc1");
    auto cmd = agent.NextCommand();
    ASSERT_TRUE(cmd && cmd->has_backup());
    v1::JobResult r = Ok(cmd->backup());
    c.mutate(cmd->backup(), &r);
    ASSERT_TRUE(agent.Result(r));
    v1::JobInfo done = WatchUntilDone(job.job_id());
    EXPECT_EQ(done.state(), "failed");
    EXPECT_NE(done.error().find(c.error), std::string::npos) << done.error();
    EXPECT_TRUE(catalog()->ListBackups("pc1")->empty());
  }
  // And the genuine receipt is accepted.
  RunBackupJob(agent, /*incremental=*/false);
  EXPECT_EQ(catalog()->ListBackups("pc1")->size(), 1u);
}

TEST_F(ServerAgentStreamTest, DroppedStreamFailsTheRunningJob) {
  StartServer();
  UseRemoteMedia();
  TlsFiles creds = EnrollAgent("pc1");
  v1::JobInfo job;
  {
    FakeAgent agent(Channel(creds));
    job = StartBackup("pc1");
    ASSERT_TRUE(agent.NextCommand().has_value());
  }  // the agent dies
  v1::JobInfo done = WatchUntilDone(job.job_id());
  EXPECT_EQ(done.state(), "failed");
  EXPECT_EQ(done.error(), JobEngine::kAgentDisconnectedError);
}

TEST_F(ServerAgentStreamTest, QueuedJobWaitsForItsClientThenRunsOneAtATime) {
  StartServer();
  UseRemoteMedia();
  TlsFiles creds = EnrollAgent("pc1");
  v1::JobInfo first = StartBackup("pc1");
  v1::JobInfo second = StartBackup("pc1", false, "/dev/sdb");
  EXPECT_EQ(first.state(), "queued");
  EXPECT_EQ(second.state(), "queued");

  FakeAgent agent(Channel(creds));
  auto cmd = agent.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_backup());
  EXPECT_EQ(cmd->backup().job_id(), first.job_id());
  EXPECT_EQ(catalog()->GetJob(second.job_id())->state, JobState::kQueued);
  ASSERT_TRUE(agent.Result(Ok(cmd->backup())));
  cmd = agent.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_backup());
  EXPECT_EQ(cmd->backup().job_id(), second.job_id());
  EXPECT_EQ(cmd->backup().source_path(), "/dev/sdb");
}

TEST_F(ServerAgentStreamTest, ReconnectKeepsTheJobsTheAgentStillRuns) {
  StartServer();
  UseRemoteMedia();
  TlsFiles creds = EnrollAgent("pc1");
  FakeAgent first(Channel(creds));
  v1::JobInfo job = StartBackup("pc1");
  auto cmd = first.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_backup());
  // A new stream that lists the job replaces the old one; the job goes on.
  FakeAgent second(Channel(creds), {job.job_id()});
  EXPECT_EQ(first.WaitEnded().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(second.Result(Ok(cmd->backup())));
  EXPECT_EQ(WatchUntilDone(job.job_id()).state(), "succeeded");
}

// A stream that drops (network blip) does not fail the job at once: the
// agent that reconnects within the grace and lists the job goes on with it.
// One that reconnects without listing it has lost it: the job fails then.
TEST_F(ServerAgentStreamTest, ADroppedStreamIsForgivenWithinTheReconnectGrace) {
  reconnect_grace_ = std::chrono::seconds(30);
  StartServer();
  UseRemoteMedia();
  TlsFiles creds = EnrollAgent("pc1");
  v1::JobInfo job = StartBackup("pc1");
  v1::BackupCommand cmd;
  {
    FakeAgent first(Channel(creds));
    auto c = first.NextCommand();
    ASSERT_TRUE(c && c->has_backup());
    cmd = c->backup();
  }  // the stream drops
  // Once the server has seen the stream end, the job is still running.
  auto connected = [&] {
    v1::GetClientRequest req;
    req.set_client_id("pc1");
    v1::ClientInfo info;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_TRUE(AdminStub()->GetClient(&ctx, req, &info).ok());
    return info.connected();
  };
  for (int i = 0; i < 500 && connected(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling
  }
  ASSERT_FALSE(connected());
  EXPECT_EQ(catalog()->GetJob(job.job_id())->state, JobState::kRunning);
  FakeAgent second(Channel(creds), {job.job_id()});
  ASSERT_TRUE(second.Result(Ok(cmd)));
  EXPECT_EQ(WatchUntilDone(job.job_id()).state(), "succeeded");

  v1::JobInfo lost = StartBackup("pc1");
  ASSERT_TRUE(second.NextCommand().has_value());
  second.Close();
  FakeAgent third(Channel(creds));  // lists nothing: the job is lost
  v1::JobInfo done = WatchUntilDone(lost.job_id());
  EXPECT_EQ(done.state(), "failed");
  EXPECT_EQ(done.error(), JobEngine::kAgentDisconnectedError);
}

// Profiles: a report is stored once per distinct content, a backup records
// the profile current when it is committed, and an admin can ask a
// connected agent for a fresh one.
TEST_F(ServerAgentStreamTest, ProfilesAreStoredLinkedAndRequestedOnDemand) {
  StartServer();
  UseRemoteMedia();
  FakeAgent agent(Channel(EnrollAgent("pc1")));
  v1::HardwareProfile p;
  p.set_running_kernel("6.1.0-pc1");
  p.set_collected_unix_us(1);
  v1::AgentMessage m;
  uint64_t raw = 0;
  auto zstd = CompressHardwareProfile(p, &raw);
  ASSERT_TRUE(zstd.ok());
  m.mutable_profile()->set_profile_zstd(*zstd);
  m.mutable_profile()->set_raw_size(raw);
  ASSERT_TRUE(agent.Write(m));
  p.set_collected_unix_us(2);  // same hardware, collected again
  zstd = CompressHardwareProfile(p, &raw);
  m.mutable_profile()->set_profile_zstd(*zstd);
  ASSERT_TRUE(agent.Write(m));
  v1::BackupCommand b = RunBackupJob(agent, /*incremental=*/false);
  auto history = catalog()->ListClientProfiles("pc1");
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ(catalog()->GetBackup(b.backup_id())->profile_ref,
            (*history)[0].profile_sha256);

  v1::GetProfileRequest get;
  get.set_backup_id(b.backup_id());
  v1::ProfileInfo info;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(AdminStub()->GetProfile(&ctx, get, &info).ok());
  }
  auto back =
      DecompressHardwareProfile(info.profile_zstd(), info.raw_size(), "answer");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->running_kernel(), "6.1.0-pc1");

  // Garbage is refused and changes nothing.
  m.mutable_profile()->set_profile_zstd("not zstd");
  ASSERT_TRUE(agent.Write(m));
  v1::RefreshProfileRequest refresh;
  refresh.set_client_id("pc1");
  v1::RefreshProfileResponse none;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(AdminStub()->RefreshProfile(&ctx, refresh, &none).ok());
  }
  auto cmd = agent.NextCommand();
  ASSERT_TRUE(cmd.has_value());
  EXPECT_TRUE(cmd->has_profile_request());
  EXPECT_EQ(catalog()->ListClientProfiles("pc1")->size(), 1u);
  refresh.set_client_id("nobody");
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_EQ(AdminStub()->RefreshProfile(&ctx, refresh, &none).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(ServerAgentStreamTest, RevokedClientIsCutOffAndRefused) {
  StartServer();
  UseRemoteMedia();
  TlsFiles creds = EnrollAgent("pc1");
  FakeAgent agent(Channel(creds));
  v1::JobInfo running = StartBackup("pc1");
  ASSERT_TRUE(agent.NextCommand().has_value());
  v1::JobInfo queued = StartBackup("pc1");

  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::RevokeClientRequest req;
  req.set_client_id("pc1");
  v1::RevokeClientResponse resp;
  ASSERT_TRUE(AdminStub()->RevokeClient(&ctx, req, &resp).ok());

  EXPECT_FALSE(agent.WaitEnded().ok());
  EXPECT_EQ(WatchUntilDone(running.job_id()).state(), "failed");
  EXPECT_EQ(WatchUntilDone(queued.job_id()).state(), "failed");

  FakeAgent again(Channel(creds));
  grpc::Status s = again.WaitEnded();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("revoked"), std::string::npos);

  // New jobs for it are refused too.
  v1::StartBackupRequest breq;
  breq.set_client_id("pc1");
  breq.set_source_path("/dev/sda");
  v1::JobInfo job;
  grpc::ClientContext ctx2;
  SetDeadline(&ctx2);
  EXPECT_EQ(AdminStub()->StartBackup(&ctx2, breq, &job).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ServerAgentStreamTest, AnAgentCannotReportAnotherClientsJob) {
  StartServer();
  UseRemoteMedia();
  FakeAgent pc1(Channel(EnrollAgent("pc1")));
  FakeAgent pc2(Channel(EnrollAgent("pc2")));
  v1::JobInfo job = StartBackup("pc1");
  auto cmd = pc1.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_backup());
  // pc2 claims pc1's job succeeded, then reports progress for it.
  ASSERT_TRUE(pc2.Result(Ok(cmd->backup())));
  ASSERT_TRUE(pc2.Progress(job.job_id(), 1, 2));
  // pc1's own report is what counts; pc2's changed nothing.
  ASSERT_TRUE(pc1.Progress(job.job_id(), 7, 9));
  v1::JobResult r;
  r.set_job_id(job.job_id());
  r.set_ok(false);
  r.set_error("pc1 failed");
  ASSERT_TRUE(pc1.Result(r));
  v1::JobInfo done = WatchUntilDone(job.job_id());
  EXPECT_EQ(done.state(), "failed");
  EXPECT_EQ(done.error(), "pc1 failed");
  EXPECT_EQ(done.done_bytes(), 7u);
  EXPECT_TRUE(catalog()->ListBackups("pc1")->empty());
}

TEST_F(ServerAgentStreamTest, CancelPushesCancelAndEndsTheJob) {
  StartServer();
  UseRemoteMedia();
  FakeAgent agent(Channel(EnrollAgent("pc1")));
  v1::JobInfo job = StartBackup("pc1");
  auto cmd = agent.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_backup());
  const v1::BackupCommand b = cmd->backup();
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::CancelJobRequest req;
  req.set_job_id(job.job_id());
  v1::JobInfo cancelled;
  ASSERT_TRUE(AdminStub()->CancelJob(&ctx, req, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), "cancelled");
  cmd = agent.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_cancel());
  EXPECT_EQ(cmd->cancel().job_id(), job.job_id());
  // A late success report changes nothing.
  ASSERT_TRUE(agent.Result(Ok(b)));
  EXPECT_EQ(WatchUntilDone(job.job_id()).state(), "cancelled");
}

TEST_F(ServerAgentStreamTest, MalformedStreamIsRefused) {
  StartServer();
  TlsFiles creds = EnrollAgent("pc1");
  FakeAgent agent(Channel(creds));
  v1::AgentMessage hello;
  hello.mutable_hello();
  ASSERT_TRUE(agent.Write(hello));  // a second Hello
  EXPECT_EQ(agent.WaitEnded().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A media-role certificate may not open an agent stream.
  FakeAgent media(Channel(CredsFor("media-9", Role::kMedia)));
  EXPECT_EQ(media.WaitEnded().error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

// The whole data path: the fake agent loop runs the real backup pipeline
// and restore through RemoteMedia against the embedded media service at the
// server's own address, encrypted with the policy key the server hands out.
TEST_F(ServerAgentStreamTest, RealBackupAndRestoreThroughEmbeddedMedia) {
  StartServer(/*embedded_media=*/true, /*encrypt=*/true);
  TlsFiles creds = EnrollAgent("pc1");
  auto channel = Channel(creds);
  FakeAgent agent(channel);
  std::string data = testing::TextLikeBytes(3 << 20, 7) +
                     std::string(1 << 20, '\0') +
                     testing::PseudoRandomBytes(1 << 20, 8);
  std::string image = dir_.Sub("disk.img");
  testing::WriteFileOrDie(image, data);

  v1::JobInfo job = StartBackup("pc1", false, image);
  auto cmd = agent.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_backup());
  const v1::BackupCommand b = cmd->backup();
  EXPECT_TRUE(b.media().address().empty());  // embedded: the server's address
  ASSERT_EQ(b.media().data_key().size(), 32u);
  auto key = DataKey::FromSecret(b.media().data_key());
  ASSERT_TRUE(key.ok());

  RemoteMedia sink(channel, address_, b.media().ticket());
  BackupRequest req;
  req.source_path = b.source_path();
  req.source_name = "pc1";
  req.backup_id = b.backup_id();
  req.chunk_size = 1 << 20;
  req.key = &*key;
  req.threads = 2;
  auto r = RunBackup(req, &sink);
  ASSERT_TRUE(r.ok()) << r.status();
  v1::JobResult result;
  result.set_job_id(b.job_id());
  result.set_ok(true);
  result.set_backup_id(r->manifest.backup_id);
  result.set_image_size(r->stats.image_size);
  result.set_new_stored_bytes(r->stats.new_stored_bytes);
  result.set_chunks_new(r->stats.chunks_new);
  result.set_chunks_deduplicated(r->stats.chunks_present);
  ASSERT_TRUE(agent.Result(result));
  ASSERT_EQ(WatchUntilDone(job.job_id()).state(), "succeeded");
  auto backup = catalog()->GetBackup(b.backup_id());
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_EQ(backup->media_agent_id, kEmbeddedMediaId);
  EXPECT_EQ(backup->image_size, data.size());

  // Restore through a RESTORE ticket.
  v1::StartRestoreRequest rreq;
  rreq.set_backup_id(b.backup_id());
  rreq.set_target_path(dir_.Sub("restored.img"));
  v1::JobInfo rjob;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = AdminStub()->StartRestore(&ctx, rreq, &rjob);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  cmd = agent.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_restore());
  EXPECT_EQ(cmd->restore().backup_id(), b.backup_id());
  RemoteMedia source(channel, address_, cmd->restore().media().ticket());
  auto reader = ImageReader::Open(&source, b.backup_id(), &*key);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE(
      RestoreImage(reader->get(), cmd->restore().target_path(), {}).ok());
  EXPECT_EQ(testing::ReadFileOrDie(cmd->restore().target_path()), data);
  v1::JobResult rres;
  rres.set_job_id(rjob.job_id());
  rres.set_ok(true);
  ASSERT_TRUE(agent.Result(rres));
  EXPECT_EQ(WatchUntilDone(rjob.job_id()).state(), "succeeded");
}

TEST_F(ServerAgentStreamTest, EmbeddedMediaRefusesASuccessWithoutAManifest) {
  StartServer(/*embedded_media=*/true);
  FakeAgent agent(Channel(EnrollAgent("pc1")));
  v1::JobInfo job = StartBackup("pc1");
  auto cmd = agent.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_backup());
  ASSERT_TRUE(agent.Result(Ok(cmd->backup())));  // but nothing was committed
  v1::JobInfo done = WatchUntilDone(job.job_id());
  EXPECT_EQ(done.state(), "failed");
  EXPECT_NE(done.error().find("no manifest"), std::string::npos)
      << done.error();
  EXPECT_TRUE(catalog()->ListBackups("pc1")->empty());
}

TEST_F(ServerAgentStreamTest, RevokedClientIsRefusedByTheEmbeddedDataPath) {
  StartServer(/*embedded_media=*/true);
  auto channel = Channel(EnrollAgent("pc1"));
  FakeAgent agent(channel);
  StartBackup("pc1");
  auto cmd = agent.NextCommand();
  ASSERT_TRUE(cmd && cmd->has_backup());
  RemoteMedia media(channel, address_, cmd->backup().media().ticket());
  std::vector<ChunkId> ids = {ComputeChunkId("x", nullptr)};
  ASSERT_TRUE(media.HasChunks(ids).ok());

  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::RevokeClientRequest req;
  req.set_client_id("pc1");
  v1::RevokeClientResponse resp;
  ASSERT_TRUE(AdminStub()->RevokeClient(&ctx, req, &resp).ok());
  auto refused = media.HasChunks(ids);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(std::string(refused.status().message()).find("revoked"),
            std::string::npos)
      << refused.status();
}

}  // namespace
}  // namespace cairn
