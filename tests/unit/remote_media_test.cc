// The media data path over real gRPC with mutual TLS 1.3 on loopback: an
// agent backs up through RemoteMedia to a media agent's MediaService and
// restores byte-exact; callers with the wrong role or no ticket are refused.
#include "agent/remote_media.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/backup_pipeline.h"
#include "agent/image_restore.h"
#include "common/chunk_format.h"
#include "common/image_reader.h"
#include "common/session_ticket.h"
#include "common/tls.h"
#include "media_agent/media_service.h"
#include "server/certificate_authority.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

class RemoteMediaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = CertificateAuthority::Create(dir_.Sub("ca"), "Cairn test CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
    auto server_cert = ca_->IssueServerCertificate({}, {});
    ASSERT_TRUE(server_cert.ok()) << server_cert.status();
    server_cert_ = *server_cert;

    RepositoryOptions o;
    o.create_if_missing = true;
    repo_ = *Repository::Open(dir_.Sub("repo"), o);
    data_path_ = std::make_unique<DataPath>(repo_.get(), "media-1",
                                            server_cert_.cert_pem);
    handler_ = std::make_unique<MediaServiceHandler>(data_path_.get());

    auto creds = MakeServerCredentials(
        {ca_->CertificatePem(), server_cert_.cert_pem, server_cert_.key_pem});
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port);
    builder.SetMaxReceiveMessageSize(kMediaMaxMessageBytes);
    builder.SetMaxSendMessageSize(kMediaMaxMessageBytes);
    builder.RegisterService(handler_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = "localhost:" + std::to_string(port);
  }
  void TearDown() override {
    if (server_)
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
  }

  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& identity,
                                            Role role) {
    auto csr = CreateKeyAndCsr(identity);
    EXPECT_TRUE(csr.ok()) << csr.status();
    auto cert = ca_->SignCsr(csr->csr_pem, identity, role);
    EXPECT_TRUE(cert.ok()) << cert.status();
    auto creds =
        MakeChannelCredentials({ca_->CertificatePem(), *cert, csr->key_pem});
    EXPECT_TRUE(creds.ok()) << creds.status();
    return grpc::CreateCustomChannel(address_, *creds, MediaChannelArguments());
  }

  std::string Ticket(SessionTicket::Operation op, const std::string& client,
                     const std::string& backup_id, uint64_t job) {
    SessionTicket t;
    t.operation = op;
    t.client_id = client;
    t.job_id = job;
    t.backup_id = backup_id;
    t.media_id = "media-1";
    t.expires_unix_us = absl::ToUnixMicros(absl::Now() + absl::Hours(1));
    return *SignTicket(t, server_cert_.key_pem);
  }

  testing::ScratchDir dir_;
  std::unique_ptr<CertificateAuthority> ca_;
  IssuedCertificate server_cert_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<DataPath> data_path_;
  std::unique_ptr<MediaServiceHandler> handler_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(RemoteMediaTest, BackupAndRestoreOverMutualTls) {
  std::string data = testing::TextLikeBytes(5 << 20, 1) +
                     std::string(4 << 20, '\0') +
                     testing::PseudoRandomBytes(3 << 20, 2);
  std::string image = dir_.Sub("image");
  testing::WriteFileOrDie(image, data);
  DataKey key = DataKey::Generate();
  auto channel = ChannelFor("pc1", Role::kAgent);

  RemoteMedia sink(
      channel, address_,
      Ticket(SessionTicket::Operation::kBackup, "pc1", "pc1-b1", 1));
  BackupRequest req;
  req.source_path = image;
  req.source_name = "pc1";
  req.backup_id = "pc1-b1";
  req.chunk_size = 1 << 20;
  req.key = &key;
  auto r = RunBackup(req, &sink);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->stats.chunks_new, 0u);
  EXPECT_TRUE(*repo_->manifests().Exists("pc1-b1"));

  RemoteMedia source(
      channel, address_,
      Ticket(SessionTicket::Operation::kRestore, "pc1", "pc1-b1", 2));
  auto reader = ImageReader::Open(&source, "pc1-b1", &key);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string out = dir_.Sub("restored");
  ASSERT_TRUE(RestoreImage(reader->get(), out, {}).ok());
  EXPECT_EQ(testing::ReadFileOrDie(out), data);
}

TEST_F(RemoteMediaTest, WrongRoleOrAnotherClientsTicketIsRefused) {
  std::string ticket =
      Ticket(SessionTicket::Operation::kBackup, "pc1", "b1", 1);
  std::vector<ChunkId> ids = {ComputeChunkId("x", nullptr)};
  // A media-role certificate may not use the agent data path.
  RemoteMedia as_media(ChannelFor("media-2", Role::kMedia), address_, ticket);
  EXPECT_EQ(as_media.HasChunks(ids).status().code(),
            absl::StatusCode::kPermissionDenied);
  // Client pc2 presenting pc1's ticket.
  RemoteMedia as_pc2(ChannelFor("pc2", Role::kAgent), address_, ticket);
  auto r = as_pc2.HasChunks(ids);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(std::string(r.status().message()).find("belongs to client 'pc1'"),
            std::string::npos);
  // A malformed chunk id is InvalidArgument; a damaged chunk is refused.
  RemoteMedia as_pc1(ChannelFor("pc1", Role::kAgent), address_, ticket);
  std::string stored = "not a chunk";
  EXPECT_EQ(as_pc1.PutChunk(ids[0], stored).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(repo_->manifests().List()->empty());
}

TEST_F(RemoteMediaTest, CallerWithoutCertificateIsUnauthenticated) {
  auto creds = MakeEnrollmentChannelCredentials(ca_->CertificatePem());
  ASSERT_TRUE(creds.ok()) << creds.status();
  auto channel =
      grpc::CreateCustomChannel(address_, *creds, MediaChannelArguments());
  RemoteMedia anon(channel, address_,
                   Ticket(SessionTicket::Operation::kBackup, "pc1", "b1", 1));
  std::vector<ChunkId> ids = {ComputeChunkId("x", nullptr)};
  EXPECT_EQ(anon.HasChunks(ids).status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace cairn
