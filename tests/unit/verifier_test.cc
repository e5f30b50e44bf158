#include "media_agent/verifier.h"

#include <gtest/gtest.h>

#include "tests/unit/repo_fixture.h"

namespace cairn {
namespace {

class VerifierTest : public RepoFixture {};

TEST_F(VerifierTest, CleanRepositoryVerifies) {
  std::string data = testing::TextLikeBytes(1 << 20, 1);
  BackupData("b1", data);
  auto r = VerifyRepository(repo_.get(), {});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->backups_checked, 1u);
  EXPECT_EQ(r->chunks_checked, 16u);
  EXPECT_EQ(r->chunks_deep_checked,
            16u);  // unencrypted: re-hashed without a key
}

TEST_F(VerifierTest, FlippedByteIsReportedWithEveryAffectedBackup) {
  std::string a = testing::TextLikeBytes(1 << 20, 1);
  std::string b = a;
  b[900000] ^= 1;  // b shares 15 of a's 16 chunks
  BackupResult ra = BackupData("a", a);
  BackupData("b", b);
  BackupData("c", testing::PseudoRandomBytes(128 << 10, 9));
  ChunkId victim = ra.manifest.chunks[2];  // shared by a and b
  std::string path = repo_->chunks().ChunkPath(victim);
  testing::FlipByteOrDie(path, 100);

  auto r = VerifyRepository(repo_.get(), {});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok());
  ASSERT_EQ(r->bad_chunks.size(), 1u);
  EXPECT_EQ(r->bad_chunks[0].id, victim);
  EXPECT_EQ(r->bad_chunks[0].path, path);
  EXPECT_NE(r->bad_chunks[0].error.find("CRC"), std::string::npos)
      << r->bad_chunks[0].error;
  EXPECT_EQ(r->bad_chunks[0].affected_backups,
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->damaged_backups, (std::vector<std::string>{"a", "b"}));

  // Restricting to backup c finds nothing wrong.
  VerifyOptions only_c;
  only_c.backup_ids = {"c"};
  EXPECT_TRUE(VerifyRepository(repo_.get(), only_c)->ok());
  only_c.backup_ids = {"nope"};
  EXPECT_EQ(VerifyRepository(repo_.get(), only_c).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(VerifierTest, MissingChunkAndDamagedManifestAreReported) {
  BackupResult r1 = BackupData("b1", testing::TextLikeBytes(256 << 10, 1));
  BackupData("b2", testing::TextLikeBytes(256 << 10, 2));
  ASSERT_TRUE(repo_->chunks().Remove(r1.manifest.chunks[0]).ok());
  testing::FlipByteOrDie(*repo_->manifests().Path("b2"), 20);
  auto r = VerifyRepository(repo_.get(), {});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->bad_chunks.size(), 1u);
  EXPECT_EQ(r->bad_chunks[0].error, "missing");
  ASSERT_EQ(r->bad_manifests.size(), 1u);
  EXPECT_EQ(r->bad_manifests[0].backup_id, "b2");
  EXPECT_EQ(r->damaged_backups, (std::vector<std::string>{"b1", "b2"}));
}

TEST_F(VerifierTest, KeyEnablesDeepChecksOfEncryptedChunks) {
  DataKey key = DataKey::Generate();
  BackupResult r1 =
      BackupData("e1", testing::TextLikeBytes(512 << 10, 3), "", &key);
  auto shallow = VerifyRepository(repo_.get(), {});
  ASSERT_TRUE(shallow.ok());
  EXPECT_TRUE(shallow->ok());
  EXPECT_EQ(shallow->chunks_deep_checked, 0u);  // CRC only without the key
  VerifyOptions deep;
  deep.key = &key;
  auto d = VerifyRepository(repo_.get(), deep);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->ok());
  EXPECT_EQ(d->chunks_deep_checked, 8u);

  // Swap two chunk files: CRCs still pass, the GCM tag (bound to the id) does
  // not.
  std::string p0 = repo_->chunks().ChunkPath(r1.manifest.chunks[0]);
  std::string p1 = repo_->chunks().ChunkPath(r1.manifest.chunks[1]);
  std::string c0 = testing::ReadFileOrDie(p0), c1 = testing::ReadFileOrDie(p1);
  testing::WriteFileOrDie(p0, c1);
  testing::WriteFileOrDie(p1, c0);
  EXPECT_TRUE(VerifyRepository(repo_.get(), {})->ok());
  auto swapped = VerifyRepository(repo_.get(), deep);
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(swapped->bad_chunks.size(), 2u);
}

}  // namespace
}  // namespace cairn
