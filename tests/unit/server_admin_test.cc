// The Admin service's authorization and audit, and the server's restart
// behaviour, over real gRPC with mutual TLS on loopback.
#include <gtest/gtest.h>

#include "tests/unit/server_test_harness.h"

namespace cairn {
namespace {

using testing::FakeAgent;
using testing::SetDeadline;

class ServerAdminTest : public testing::ServerTest {
 protected:
  void SetUp() override { StartServer(); }

  // Credentials for a user with `role`, registered in the catalog.
  TlsFiles UserCreds(const std::string& name, Role role) {
    TlsFiles files = CredsFor(name, role);
    User u;
    u.name = name;
    u.role = role;
    u.cert_fingerprint = *CertificateFingerprint(files.cert_pem);
    EXPECT_TRUE(catalog()->PutUser(u).ok());
    return files;
  }
  grpc::Status CreateToken(const TlsFiles& files) {
    v1::CreateTokenRequest req;
    req.set_role(v1::ROLE_AGENT);
    req.set_ttl_seconds(600);
    v1::CreateTokenResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return v1::Admin::NewStub(Channel(files))->CreateToken(&ctx, req, &resp);
  }
  grpc::Status ListClients(const TlsFiles& files) {
    v1::ListClientsResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return v1::Admin::NewStub(Channel(files))->ListClients(&ctx, {}, &resp);
  }
  grpc::Status StartBackupAs(const TlsFiles& files) {
    v1::StartBackupRequest req;
    req.set_client_id("pc1");
    req.set_source_path("/dev/sda");
    v1::JobInfo job;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return v1::Admin::NewStub(Channel(files))->StartBackup(&ctx, req, &job);
  }
};

TEST_F(ServerAdminTest, RolesOutsideAnRpcsListAreRefused) {
  EnrollAgent("pc1");
  TlsFiles op = UserCreds("olga", Role::kOperator);
  TlsFiles auditor = UserCreds("audrey", Role::kAuditor);
  TlsFiles helpdesk = UserCreds("hank", Role::kHelpdesk);

  EXPECT_EQ(CreateToken(op).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CreateToken(auditor).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(StartBackupAs(auditor).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(StartBackupAs(helpdesk).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // An agent or media certificate is no administrator.
  EXPECT_EQ(ListClients(CredsFor("pc1", Role::kAgent)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ListClients(CredsFor("media-1", Role::kMedia)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(catalog()->ListJobs()->empty());

  // The allowed ones work.
  EXPECT_TRUE(ListClients(auditor).ok());
  EXPECT_TRUE(StartBackupAs(op).ok());
  EXPECT_EQ(catalog()->ListJobs()->size(), 1u);

  // Refusals of mutating calls are audited.
  auto audit = catalog()->ListAudit(0, 0);
  ASSERT_TRUE(audit.ok());
  int denied = 0;
  for (const AuditEntry& e : *audit) {
    if (e.result.rfind("denied", 0) == 0) ++denied;
  }
  EXPECT_EQ(denied, 4);
}

TEST_F(ServerAdminTest, ACertificateTheCatalogDoesNotKnowIsRefused) {
  // Signed by the CA but no such user: refused.
  EXPECT_EQ(ListClients(CredsFor("mallory", Role::kAdmin)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A second certificate for "admin" that init did not issue: refused.
  grpc::Status s = ListClients(CredsFor("admin", Role::kAdmin));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("superseded"), std::string::npos);
}

TEST_F(ServerAdminTest, MutationsAreAuditedWithTheCaller) {
  auto admin = ReadTlsFiles(home() + "/admin");
  ASSERT_TRUE(admin.ok());
  ASSERT_TRUE(CreateToken(*admin).ok());
  auto audit = catalog()->ListAudit(0, 0);
  ASSERT_TRUE(audit.ok());
  ASSERT_FALSE(audit->empty());
  const AuditEntry& last = audit->back();
  EXPECT_EQ(last.action, "token.create");
  EXPECT_EQ(last.actor, "admin");
  EXPECT_EQ(last.role, Role::kAdmin);
  EXPECT_EQ(last.result, "ok");
}

TEST_F(ServerAdminTest, BadRequestsAreClearErrors) {
  auto stub = AdminStub();
  {
    v1::CreateTokenRequest req;
    req.set_role(v1::ROLE_ADMIN);
    v1::CreateTokenResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_EQ(stub->CreateToken(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::CreateTokenRequest req;
    req.set_role(v1::ROLE_AGENT);
    req.set_ttl_seconds(8 * 24 * 3600);
    v1::CreateTokenResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_EQ(stub->CreateToken(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::GetClientRequest req;
    req.set_client_id("nobody");
    v1::ClientInfo resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_EQ(stub->GetClient(&ctx, req, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    v1::ListJobsRequest req;
    req.set_state("sleeping");
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_EQ(stub->ListJobs(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::StartRestoreRequest req;
    req.set_backup_id("no-such-backup");
    req.set_target_path("/dev/sdb");
    v1::JobInfo resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_EQ(stub->StartRestore(&ctx, req, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  EXPECT_TRUE(catalog()->ListJobs()->empty());
}

// Control messages are limited to 4 MiB (common/message_limits.h): by gRPC
// itself on a control-only port, by the handlers when the embedded media
// agent makes the port accept 17 MiB chunks. Either way nothing changes.
TEST_F(ServerAdminTest, OversizedRequestsAreRefusedWithOrWithoutEmbeddedMedia) {
  EnrollAgent("pc1");
  for (bool embedded : {false, true}) {
    SCOPED_TRACE(embedded ? "embedded media" : "control only");
    StopServer();
    StartServer(embedded);
    v1::StartBackupRequest req;
    req.set_client_id("pc1");
    req.set_source_path(std::string(5 << 20, 'a'));
    v1::JobInfo job;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = AdminStub()->StartBackup(&ctx, req, &job);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << s.error_message();
    EXPECT_TRUE(catalog()->ListJobs()->empty());
  }
}

TEST_F(ServerAdminTest, ClientsShowConnectedAndRevoked) {
  TlsFiles creds = EnrollAgent("pc1");
  FakeAgent agent(Channel(creds));
  // Connected once the registry has the session: wait on a job dispatch,
  // which needs it (no media agent: the job fails at dispatch).
  v1::JobInfo job = StartBackup("pc1");
  EXPECT_EQ(WatchUntilDone(job.job_id()).state(), "failed");
  v1::ListClientsResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ASSERT_TRUE(AdminStub()->ListClients(&ctx, {}, &resp).ok());
  ASSERT_EQ(resp.clients_size(), 1);
  EXPECT_EQ(resp.clients(0).client_id(), "pc1");
  EXPECT_TRUE(resp.clients(0).connected());
  EXPECT_FALSE(resp.clients(0).revoked());
  EXPECT_GT(resp.clients(0).last_seen_unix_us(), 0);
}

TEST_F(ServerAdminTest, AJobRunningWhenTheServerStopsIsFailedOnRestart) {
  MediaAgent m;
  m.media_agent_id = "media-1";
  m.address = "media-1.example:7444";
  ASSERT_TRUE(catalog()->PutMediaAgent(m).ok());
  TlsFiles creds = EnrollAgent("pc1");
  uint64_t job_id;
  {
    FakeAgent agent(Channel(creds));
    job_id = StartBackup("pc1").job_id();
    ASSERT_TRUE(agent.NextCommand().has_value());
    EXPECT_EQ(catalog()->GetJob(job_id)->state, JobState::kRunning);
    StopServer();  // graceful: the agent's stream is closed
    EXPECT_FALSE(agent.WaitEnded().ok());
  }
  StartServer();
  auto job = catalog()->GetJob(job_id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state, JobState::kFailed);
  EXPECT_EQ(job->error, Catalog::kServerStoppedError);
  // And the client, its enrollment and the audit log survived.
  EXPECT_TRUE(catalog()->GetClient("pc1").ok());
}

}  // namespace
}  // namespace cairn
