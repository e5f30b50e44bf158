// Enrollment over real gRPC with TLS 1.3 on loopback: a valid token yields a
// working certificate; a reused, expired or wrong-role token, a taken
// identity or a malformed request is refused and changes nothing.
#include <gtest/gtest.h>

#include "cairn/v1/health.grpc.pb.h"
#include "common/peer_identity.h"
#include "tests/unit/server_test_harness.h"

namespace cairn {
namespace {

using testing::SetDeadline;

class ServerEnrollmentTest : public testing::ServerTest {
 protected:
  void SetUp() override { StartServer(); }

  std::string NewToken(Role role, int64_t ttl_us = 600'000'000) {
    auto t = catalog()->CreateToken(role, ttl_us, "test");
    EXPECT_TRUE(t.ok()) << t.status();
    return t->token;
  }
  bool TokenUsed() {
    auto tokens = catalog()->ListTokens();
    EXPECT_TRUE(tokens.ok());
    for (const auto& t : *tokens)
      if (t.used) return true;
    return false;
  }
};

TEST_F(ServerEnrollmentTest, ValidTokenGivesAWorkingCertificate) {
  // The admin creates the token through the Admin service.
  v1::CreateTokenRequest treq;
  treq.set_role(v1::ROLE_AGENT);
  treq.set_ttl_seconds(600);
  v1::CreateTokenResponse token;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = AdminStub()->CreateToken(&ctx, treq, &token);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(token.ca_fingerprint(), server_->ca().Fingerprint());
  EXPECT_FALSE(token.token().empty());

  v1::EnrollResponse resp;
  std::string key;
  grpc::Status s = Enroll(token.token(), "pc-17", v1::ROLE_AGENT, &resp, &key);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.identity(), "pc-17");
  EXPECT_EQ(resp.ca_certificate_pem(), server_->ca().CertificatePem());
  auto who = PeerIdentityFromCertificatePem(resp.certificate_pem());
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->role, Role::kAgent);

  // The certificate works: Health answers with the identity.
  auto health = v1::Health::NewStub(
      Channel({resp.ca_certificate_pem(), resp.certificate_pem(), key}));
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::HealthCheckResponse h;
  s = health->Check(&ctx, {}, &h);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(h.peer_identity(), "pc-17");
  EXPECT_EQ(h.peer_role(), "agent");

  auto client = catalog()->GetClient("pc-17");
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ(client->cert_fingerprint,
            *CertificateFingerprint(resp.certificate_pem()));
  EXPECT_TRUE(TokenUsed());
}

TEST_F(ServerEnrollmentTest, ReusedTokenIsRefused) {
  std::string token = NewToken(Role::kAgent);
  v1::EnrollResponse resp;
  std::string key;
  ASSERT_TRUE(Enroll(token, "pc1", v1::ROLE_AGENT, &resp, &key).ok());
  grpc::Status s = Enroll(token, "pc2", v1::ROLE_AGENT, &resp, &key);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(catalog()->GetClient("pc2").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ServerEnrollmentTest, ExpiredTokenIsRefusedAndNothingChanges) {
  std::string token = NewToken(Role::kAgent, /*ttl_us=*/1);
  v1::EnrollResponse resp;
  std::string key;
  grpc::Status s = Enroll(token, "pc1", v1::ROLE_AGENT, &resp, &key);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(resp.certificate_pem().empty());
  EXPECT_TRUE(catalog()->ListClients()->empty());
  EXPECT_FALSE(TokenUsed());
}

TEST_F(ServerEnrollmentTest, WrongRoleIsRefusedAndTheTokenStaysUsable) {
  std::string token = NewToken(Role::kMedia);
  v1::EnrollResponse resp;
  std::string key;
  grpc::Status s = Enroll(token, "pc1", v1::ROLE_AGENT, &resp, &key);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(catalog()->ListClients()->empty());
  EXPECT_FALSE(TokenUsed());
  // The same token enrolls a media agent; its certificate also serves TLS.
  s = Enroll(token, "media-1", v1::ROLE_MEDIA, &resp, &key, "127.0.0.1:7444");
  ASSERT_TRUE(s.ok()) << s.error_message();
  auto media = catalog()->GetMediaAgent("media-1");
  ASSERT_TRUE(media.ok()) << media.status();
  EXPECT_EQ(media->address, "127.0.0.1:7444");
  EXPECT_TRUE(MakeServerCredentials(
                  {resp.ca_certificate_pem(), resp.certificate_pem(), key})
                  .ok());
}

TEST_F(ServerEnrollmentTest, TakenIdentityIsRefusedAndTheTokenStaysUnused) {
  testing::ServerTest::EnrollAgent("pc1");
  std::string token = NewToken(Role::kAgent);
  auto before = catalog()->GetClient("pc1");
  v1::EnrollResponse resp;
  std::string key;
  grpc::Status s = Enroll(token, "pc1", v1::ROLE_AGENT, &resp, &key);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(catalog()->GetClient("pc1")->cert_fingerprint,
            before->cert_fingerprint);
  auto tokens = catalog()->ListTokens();
  int unused = 0;
  for (const auto& t : *tokens) unused += !t.used;
  EXPECT_EQ(unused, 1);
}

TEST_F(ServerEnrollmentTest, MalformedRequestsAreRefused) {
  std::string token = NewToken(Role::kAgent);
  v1::EnrollResponse resp;
  std::string key;
  EXPECT_EQ(Enroll(token, "../etc", v1::ROLE_AGENT, &resp, &key).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Enroll(token, "pc1", v1::ROLE_ADMIN, &resp, &key).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::EnrollRequest req;
  req.set_token(token);
  req.set_hostname("pc1");
  req.set_csr_pem("not a csr");
  req.set_role(v1::ROLE_AGENT);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  grpc::Status s =
      v1::AgentControl::NewStub(EnrollmentChannel())->Enroll(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(catalog()->ListClients()->empty());
  EXPECT_FALSE(TokenUsed());
}

TEST_F(ServerEnrollmentTest, CallsWithoutACertificateAreUnauthenticated) {
  auto stub = v1::Admin::NewStub(EnrollmentChannel());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::ListClientsResponse resp;
  grpc::Status s = stub->ListClients(&ctx, {}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace cairn
