#include "media_agent/data_path.h"

#include <gtest/gtest.h>

#include "agent/backup_pipeline.h"
#include "common/chunk_format.h"
#include "common/session_ticket.h"
#include "tests/testing/test_certs.h"
#include "tests/unit/repo_fixture.h"

namespace cairn {
namespace {

constexpr int64_t kNow = 1'800'000'000'000'000;

class DataPathTest : public RepoFixture {
 protected:
  void SetUp() override {
    RepoFixture::SetUp();
    server_ = testing::MakeSelfSignedEcCert("cairn-server");
    path_ = std::make_unique<DataPath>(repo_.get(), "media-1", server_.cert_pem,
                                       [this] { return now_; });
  }
  std::string Ticket(SessionTicket::Operation op, const std::string& client,
                     const std::string& backup_id, uint64_t job = 7,
                     const std::string& parent = "",
                     const std::string& media = "media-1",
                     const testing::TestKeyPair* signer = nullptr) {
    SessionTicket t;
    t.operation = op;
    t.client_id = client;
    t.job_id = job;
    t.backup_id = backup_id;
    t.parent_backup_id = parent;
    t.media_id = media;
    t.expires_unix_us = kNow + 3'600'000'000;
    auto s = SignTicket(t, (signer ? *signer : server_).key_pem);
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }
  // A sink that goes through the DataPath as `client` would over the network.
  class Sink : public ChunkSink {
   public:
    Sink(DataPath* p, std::string client, std::string ticket)
        : p_(p), client_(std::move(client)), ticket_(std::move(ticket)) {}
    StatusOr<std::vector<bool>> HasChunks(
        std::span<const ChunkId> ids) override {
      return p_->HasChunks(client_, ticket_, ids);
    }
    Status PutChunk(const ChunkId& id, std::string_view stored) override {
      return p_->PutChunk(client_, ticket_, id, stored);
    }
    Status Commit(const std::string& id, std::string_view m) override {
      return p_->CommitBackup(client_, ticket_, id, m).status();
    }
    DataPath* p_;
    std::string client_, ticket_;
  };
  StatusOr<BackupResult> Backup(const std::string& client,
                                const std::string& ticket,
                                const std::string& id,
                                const std::string& data) {
    std::string img = dir_.Sub("img-" + id);
    testing::WriteFileOrDie(img, data);
    BackupRequest req;
    req.source_path = img;
    req.source_name = client;
    req.backup_id = id;
    req.chunk_size = 64 << 10;
    Sink sink(path_.get(), client, ticket);
    return RunBackup(req, &sink);
  }

  testing::TestKeyPair server_;
  int64_t now_ = kNow;
  std::unique_ptr<DataPath> path_;
};

TEST_F(DataPathTest, TicketedBackupAndRestore) {
  std::string data = testing::TextLikeBytes(300 << 10, 1);
  auto r =
      Backup("pc1", Ticket(SessionTicket::Operation::kBackup, "pc1", "pc1-b1"),
             "pc1-b1", data);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(path_->OpenSessions(), 0u);  // commit ended the session
  std::string restore =
      Ticket(SessionTicket::Operation::kRestore, "pc1", "pc1-b1", 8);
  auto m = path_->GetManifest("pc1", restore, "pc1-b1");
  ASSERT_TRUE(m.ok()) << m.status();
  auto chunk = path_->GetChunk("pc1", restore, r->manifest.chunks[0]);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  std::string plain;
  ASSERT_TRUE(DecodeChunk(r->manifest.chunks[0], *chunk, nullptr, &plain).ok());
  EXPECT_EQ(plain, data.substr(0, 64 << 10));
}

TEST_F(DataPathTest, RefusesWrongCallerOperationMediaSignerOrExpiry) {
  std::string data = testing::TextLikeBytes(128 << 10, 2);
  std::string ticket = Ticket(SessionTicket::Operation::kBackup, "pc1", "b1");
  ChunkId id = ComputeChunkId(data.substr(0, 1000), nullptr);
  std::vector<ChunkId> ids = {id};
  auto code = [](const auto& r) { return r.status().code(); };
  // Another client presenting pc1's ticket.
  EXPECT_EQ(code(path_->HasChunks("pc2", ticket, ids)),
            absl::StatusCode::kPermissionDenied);
  // A restore ticket cannot write; a backup ticket cannot read chunks.
  std::string restore = Ticket(SessionTicket::Operation::kRestore, "pc1", "b1");
  EXPECT_EQ(code(path_->HasChunks("pc1", restore, ids)),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(path_->GetChunk("pc1", ticket, id)),
            absl::StatusCode::kPermissionDenied);
  // For another media agent; signed by someone else; garbage; expired.
  EXPECT_EQ(code(path_->HasChunks("pc1",
                                  Ticket(SessionTicket::Operation::kBackup,
                                         "pc1", "b1", 7, "", "media-2"),
                                  ids)),
            absl::StatusCode::kPermissionDenied);
  testing::TestKeyPair rogue = testing::MakeSelfSignedEcCert("rogue");
  EXPECT_EQ(code(path_->HasChunks("pc1",
                                  Ticket(SessionTicket::Operation::kBackup,
                                         "pc1", "b1", 7, "", "media-1", &rogue),
                                  ids)),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(path_->HasChunks("pc1", "garbage", ids)),
            absl::StatusCode::kInvalidArgument);
  now_ = kNow + 3'600'000'001;
  EXPECT_EQ(code(path_->HasChunks("pc1", ticket, ids)),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(repo_->manifests().List()->empty());
}

// A backup whose agent went away does not keep its session (and its chunks
// pinned against GC) until the ticket expires: an idle session closes, and
// the same ticket later opens a fresh one.
TEST_F(DataPathTest, AnIdleBackupSessionIsClosed) {
  std::string ticket = Ticket(SessionTicket::Operation::kBackup, "pc1", "b1");
  std::vector<ChunkId> ids = {ComputeChunkId("x", nullptr)};
  ASSERT_TRUE(path_->HasChunks("pc1", ticket, ids).ok());
  EXPECT_EQ(path_->OpenSessions(), 1u);
  now_ += DataPath::kIdleSessionUs / 2;
  ASSERT_TRUE(path_->HasChunks("pc1", ticket, ids).ok());  // still in use
  EXPECT_EQ(path_->OpenSessions(), 1u);
  now_ += DataPath::kIdleSessionUs + 1;  // tickets are valid an hour
  // Any call sweeps: here another job's, whose session is then the only one.
  std::string other = Ticket(SessionTicket::Operation::kBackup, "pc2", "b2", 9);
  ASSERT_TRUE(path_->HasChunks("pc2", other, ids).ok());
  EXPECT_EQ(path_->OpenSessions(), 1u);
  ASSERT_TRUE(path_->HasChunks("pc1", ticket, ids).ok());  // reopened
  EXPECT_EQ(path_->OpenSessions(), 2u);
}

TEST_F(DataPathTest, CommitMustMatchTheTicket) {
  std::string data = testing::TextLikeBytes(128 << 10, 3);
  // The ticket allows b1; the agent tries to commit b2.
  auto r = Backup("pc1", Ticket(SessionTicket::Operation::kBackup, "pc1", "b1"),
                  "b2", data);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  // The manifest claims to be another client's backup.
  r = Backup("pc2-forged",
             Ticket(SessionTicket::Operation::kBackup, "pc1", "b1", 9), "b1",
             data);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(repo_->manifests().List()->empty());
}

TEST_F(DataPathTest, RestoreTicketReadsOnlyItsOwnBackup) {
  auto a =
      Backup("pc1", Ticket(SessionTicket::Operation::kBackup, "pc1", "a", 1),
             "a", testing::TextLikeBytes(128 << 10, 4));
  auto b =
      Backup("pc2", Ticket(SessionTicket::Operation::kBackup, "pc2", "b", 2),
             "b", testing::PseudoRandomBytes(128 << 10, 5));
  ASSERT_TRUE(a.ok() && b.ok());
  std::string restore_a =
      Ticket(SessionTicket::Operation::kRestore, "pc1", "a", 3);
  EXPECT_TRUE(path_->GetChunk("pc1", restore_a, a->manifest.chunks[0]).ok());
  EXPECT_EQ(
      path_->GetChunk("pc1", restore_a, b->manifest.chunks[0]).status().code(),
      absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(path_->GetManifest("pc1", restore_a, "b").status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace cairn
