// The media data path over real gRPC with mutual TLS 1.3 on loopback: an
// agent backs up through RemoteMedia to a media agent's MediaService and
// restores byte-exact; callers with the wrong role or no ticket are refused.
#include "agent/remote_media.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "agent/backup_pipeline.h"
#include "agent/image_restore.h"
#include "common/chunk_format.h"
#include "common/image_reader.h"
#include "common/session_ticket.h"
#include "common/tls.h"
#include "tests/testing/loopback_media.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

// CA, server certificate, repository and MediaService: see LoopbackMedia.
class RemoteMediaTest : public testing::LoopbackMediaTest {};

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
  // PutChunk is asynchronous: the refusal surfaces at Flush, at the next
  // PutChunk, and at Commit, which then commits nothing.
  ASSERT_TRUE(as_pc1.PutChunk(ids[0], stored).ok());
  EXPECT_EQ(as_pc1.Flush().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(as_pc1.PutChunk(ids[0], stored).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(as_pc1.Commit("b1", "manifest").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(repo_->manifests().List()->empty());
}

TEST_F(RemoteMediaTest, CallerWithoutCertificateIsUnauthenticated) {
  auto creds = MakeEnrollmentChannelCredentials(media_->ca()->CertificatePem());
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
