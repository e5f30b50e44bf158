#include "media_agent/chunk_store.h"

#include <gtest/gtest.h>

#include "common/chunk_format.h"
#include "media_agent/repository.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

class ChunkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RepositoryOptions o;
    o.create_if_missing = true;
    auto r = Repository::Open(dir_.Sub("repo"), o);
    ASSERT_TRUE(r.ok()) << r.status();
    repo_ = *std::move(r);
  }
  std::pair<ChunkId, std::string> MakeChunk(uint64_t seed) {
    std::string plain = testing::TextLikeBytes(100000, seed), stored;
    ChunkId id = ComputeChunkId(plain, nullptr);
    EXPECT_TRUE(EncodeChunk(id, plain, {}, &stored).ok());
    return {id, stored};
  }
  testing::ScratchDir dir_;
  std::unique_ptr<Repository> repo_;
};

TEST_F(ChunkStoreTest, PutGetHas) {
  auto [id, stored] = MakeChunk(1);
  ChunkStore& store = repo_->chunks();
  EXPECT_FALSE(*store.Has(id));
  ASSERT_TRUE(store.Put(id, stored).ok());
  EXPECT_TRUE(*store.Has(id));
  EXPECT_EQ(*store.Get(id), stored);
  ASSERT_TRUE(store.Put(id, stored).ok());  // idempotent
  auto [id2, stored2] = MakeChunk(2);
  EXPECT_EQ(store.Get(id2).status().code(), absl::StatusCode::kNotFound);
  auto session = repo_->BeginBackup();
  std::vector<ChunkId> ids = {id, id2};
  auto present = session->HasChunks(ids);
  ASSERT_TRUE(present.ok());
  EXPECT_EQ(*present, (std::vector<bool>{true, false}));
  int n = 0;
  ASSERT_TRUE(store
                  .ForEach([&](const ChunkId& c) {
                    EXPECT_EQ(c, id);
                    ++n;
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(n, 1);
}

TEST_F(ChunkStoreTest, RefusesDamagedOrZeroChunksAndChangesNothing) {
  auto [id, stored] = MakeChunk(3);
  std::string bad = stored;
  bad[bad.size() - 10] ^= 1;
  EXPECT_EQ(repo_->chunks().Put(id, bad).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(repo_->chunks().Put(ChunkId::Zero(), stored).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(*repo_->chunks().Has(id));
}

TEST_F(ChunkStoreTest, DamagedFileOnDiskIsDataLossNamingTheFile) {
  auto [id, stored] = MakeChunk(4);
  ASSERT_TRUE(repo_->chunks().Put(id, stored).ok());
  std::string path = repo_->chunks().ChunkPath(id);
  testing::WriteFileOrDie(path,
                          stored.substr(0, stored.size() / 2));  // truncated
  auto got = repo_->chunks().Get(id);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(got.status().message()).find(path), std::string::npos);
  testing::WriteFileOrDie(path, "");
  EXPECT_EQ(repo_->chunks().Get(id).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(ChunkStoreTest, SecondOpenIsRefusedWhileLocked) {
  auto again = Repository::Open(dir_.Sub("repo"), {});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  repo_.reset();
  EXPECT_TRUE(Repository::Open(dir_.Sub("repo"), {}).ok());
  EXPECT_EQ(Repository::Open(dir_.Sub("nothing-here"), {}).status().code(),
            absl::StatusCode::kNotFound);
  // init refuses a non-empty directory that is not a repository.
  testing::WriteFileOrDie(dir_.Sub("precious.txt"), "keep me");
  RepositoryOptions create;
  create.create_if_missing = true;
  EXPECT_EQ(Repository::Open(dir_.path(), create).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ChunkStoreTest, CommitRefusesBadManifests) {
  auto session = repo_->BeginBackup();
  EXPECT_EQ(session->Commit("x", "garbage").code(),
            absl::StatusCode::kInvalidArgument);
  // A manifest naming a chunk the store lacks.
  Manifest m;
  m.backup_id = "b1";
  m.image_size = 64 << 10;
  m.chunk_size = 64 << 10;
  m.chunks = {ComputeChunkId("absent", nullptr)};
  std::string enc = *EncodeManifest(m, nullptr);
  EXPECT_EQ(session->Commit("b1", enc).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(session->Commit("b2", enc).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(*repo_->manifests().Exists("b1"));
  // Path traversal in ids never reaches the file system.
  EXPECT_EQ(repo_->manifests().Get("../../etc/passwd").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cairn
