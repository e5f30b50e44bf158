#include <gtest/gtest.h>

#include <random>

#include "agent/backup_pipeline.h"
#include "agent/image_restore.h"
#include "common/image_reader.h"
#include "media_agent/repository.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

struct Param {
  uint32_t chunk_size;
  bool encrypt;
  int threads;
};

class BackupRestoreTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    RepositoryOptions o;
    o.create_if_missing = true;
    repo_ = *Repository::Open(dir_.Sub("repo"), o);
    if (GetParam().encrypt)
      key_ = std::make_unique<DataKey>(DataKey::Generate());
    // Text, zeros, random and an odd tail: not a multiple of any chunk size.
    image_data_ = testing::TextLikeBytes(3 << 20, 1) +
                  std::string(5 << 20, '\0') +
                  testing::PseudoRandomBytes((2 << 20) + 12345, 2) +
                  testing::TextLikeBytes(1 << 20, 1);  // repeats the first MiB
    image_ = dir_.Sub("image");
    testing::WriteFileOrDie(image_, image_data_);
  }

  BackupResult Backup(const std::string& id, const std::string& parent = "",
                      bool force_read = false) {
    BackupRequest req;
    Manifest parent_manifest;
    if (!parent.empty()) {
      auto pm = repo_->LoadManifest(parent, key_.get());
      EXPECT_TRUE(pm.ok()) << pm.status();
      parent_manifest = *pm;
      req.parent = &parent_manifest;
    }
    req.force_read = force_read;
    req.source_path = image_;
    req.source_name = "host-a";
    req.backup_id = id;
    req.chunk_size = GetParam().chunk_size;
    req.key = key_.get();
    req.threads = GetParam().threads;
    ProgressCounter progress(image_data_.size());
    req.progress = &progress;
    auto session = repo_->BeginBackup();
    auto r = RunBackup(req, session.get());
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(progress.Snapshot().done_bytes, image_data_.size());
    return *std::move(r);
  }

  std::string Restore(const std::string& id) {
    auto reader = ImageReader::Open(repo_.get(), id, key_.get());
    EXPECT_TRUE(reader.ok()) << reader.status();
    std::string out = dir_.Sub("restored-" + id);
    auto stats =
        RestoreImage(reader->get(), out, {GetParam().threads, nullptr});
    EXPECT_TRUE(stats.ok()) << stats.status();
    return testing::ReadFileOrDie(out);
  }

  testing::ScratchDir dir_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<DataKey> key_;
  std::string image_data_, image_;
};

TEST_P(BackupRestoreTest, FullBackupRestoresByteExact) {
  BackupResult r = Backup("full");
  EXPECT_EQ(r.stats.image_size, image_data_.size());
  EXPECT_GT(r.stats.chunks_zero, 0u);
  EXPECT_GT(r.stats.chunks_new, 0u);
  EXPECT_EQ(r.manifest.kind, BackupKind::kFull);
  EXPECT_EQ(r.manifest.encrypted(), GetParam().encrypt);
  // Zero chunks are never stored.
  uint64_t stored = 0;
  ASSERT_TRUE(repo_->chunks()
                  .ForEach([&](const ChunkId&) {
                    ++stored;
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(stored, r.stats.chunks_new);
  EXPECT_EQ(Restore("full"), image_data_);
}

TEST_P(BackupRestoreTest, UnchangedImageFileReusesParentWithoutReading) {
  Backup("b1");
  BackupResult r2 = Backup("b2", "b1");
  EXPECT_EQ(r2.manifest.kind, BackupKind::kIncremental);
  EXPECT_EQ(r2.manifest.parent_id, "b1");
  EXPECT_TRUE(r2.stats.source_unchanged);
  EXPECT_EQ(r2.stats.bytes_read, 0u);
  EXPECT_EQ(r2.stats.chunks_new, 0u);
  EXPECT_EQ(Restore("b2"), image_data_);
}

TEST_P(BackupRestoreTest, ForcedReadOfUnchangedImageSendsNothing) {
  Backup("b1");
  BackupResult r2 = Backup("b2", "b1", /*force_read=*/true);
  EXPECT_FALSE(r2.stats.source_unchanged);
  EXPECT_EQ(r2.stats.bytes_read, image_data_.size());
  EXPECT_EQ(r2.stats.chunks_new, 0u);
  EXPECT_EQ(r2.stats.new_stored_bytes, 0u);
  EXPECT_EQ(Restore("b2"), image_data_);
}

TEST_P(BackupRestoreTest, TouchedImageIsReadAgain) {
  Backup("b1");
  testing::WriteFileOrDie(image_,
                          image_data_);  // same bytes, new mtime and ctime
  BackupResult r2 = Backup("b2", "b1");
  EXPECT_FALSE(r2.stats.source_unchanged);
  EXPECT_EQ(r2.stats.bytes_read, image_data_.size());
  EXPECT_EQ(r2.stats.chunks_new, 0u);
}

TEST_P(BackupRestoreTest, ParentWhoseChunksWereCollectedIsNotTrusted) {
  BackupResult r1 = Backup("b1");
  // Lose one of the parent's chunks: the reuse path must notice and read.
  ChunkId lost;
  for (const auto& id : r1.manifest.chunks) {
    if (!id.IsZero()) lost = id;
  }
  ASSERT_TRUE(repo_->chunks().Remove(lost).ok());
  BackupResult r2 = Backup("b2", "b1");
  EXPECT_FALSE(r2.stats.source_unchanged);
  EXPECT_EQ(r2.stats.chunks_new, 1u);
  EXPECT_EQ(Restore("b2"), image_data_);
}

TEST_P(BackupRestoreTest, IncrementalSendsOnlyChangedChunks) {
  Backup("b1");
  // Change 10 bytes in the middle of the random region.
  size_t at = (8 << 20) + 1000;
  for (int i = 0; i < 10; ++i) image_data_[at + i] ^= 0x77;
  testing::WriteFileOrDie(image_, image_data_);
  BackupResult r2 = Backup("b2", "b1");
  EXPECT_EQ(r2.stats.chunks_new, 1u);
  EXPECT_EQ(Restore("b2"), image_data_);
  // The first backup still restores the old content.
  std::string old = Restore("b1");
  EXPECT_NE(old, image_data_);
  EXPECT_EQ(old.substr(0, at), image_data_.substr(0, at));
}

TEST_P(BackupRestoreTest, RandomAccessReadsMatchTheImage) {
  Backup("b1");
  auto reader = ImageReader::Open(repo_.get(), "b1", key_.get(), 4);
  ASSERT_TRUE(reader.ok());
  std::mt19937_64 rng(42);
  std::string buf;
  for (int i = 0; i < 200; ++i) {
    uint64_t off = rng() % image_data_.size();
    size_t len = std::min<uint64_t>(rng() % (3 * GetParam().chunk_size),
                                    image_data_.size() - off);
    buf.resize(len);
    ASSERT_TRUE((*reader)->ReadAt(off, len, buf.data()).ok());
    ASSERT_EQ(buf, image_data_.substr(off, len))
        << "offset " << off << " length " << len;
  }
  buf.resize(10);
  EXPECT_EQ((*reader)->ReadAt(image_data_.size() - 5, 10, buf.data()).code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_TRUE((*reader)->ReadAt(image_data_.size(), 0, buf.data()).ok());
}

INSTANTIATE_TEST_SUITE_P(
    Variants, BackupRestoreTest,
    ::testing::Values(Param{64 << 10, false, 2}, Param{64 << 10, true, 2},
                      Param{1 << 20, false, 1}, Param{4 << 20, true, 3}),
    [](const auto& info) {
      return std::to_string(info.param.chunk_size >> 10) + "KiB_" +
             (info.param.encrypt ? "encrypted" : "plain") + "_" +
             std::to_string(info.param.threads) + "threads";
    });

TEST(BackupErrorsTest, BadRequestsFailClearlyAndWriteNothing) {
  testing::ScratchDir dir;
  RepositoryOptions o;
  o.create_if_missing = true;
  auto repo = *Repository::Open(dir.Sub("repo"), o);
  BackupRequest req;
  req.source_path = dir.Sub("missing-image");
  req.source_name = "x";
  auto session = repo->BeginBackup();
  EXPECT_EQ(RunBackup(req, session.get()).status().code(),
            absl::StatusCode::kNotFound);
  testing::WriteFileOrDie(dir.Sub("img"), "abc");
  req.source_path = dir.Sub("img");
  req.chunk_size = 1000;
  EXPECT_EQ(RunBackup(req, session.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  req.chunk_size = 64 << 10;
  req.backup_id = "../escape";
  EXPECT_EQ(RunBackup(req, session.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(repo->manifests().List()->empty());
  // Restoring an encrypted backup without its key is refused.
  DataKey key = DataKey::Generate();
  req.backup_id = "enc";
  req.key = &key;
  ASSERT_TRUE(RunBackup(req, session.get()).ok());
  EXPECT_EQ(ImageReader::Open(repo.get(), "enc", nullptr).status().code(),
            absl::StatusCode::kFailedPrecondition);
  DataKey other = DataKey::Generate();
  EXPECT_EQ(ImageReader::Open(repo.get(), "enc", &other).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ImageReader::Open(repo.get(), "nope", nullptr).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(BackupIdTest, GeneratedIdsAreValidAndSafe) {
  std::string id = NewBackupId("/dev/sda", 1763791200000000);
  EXPECT_TRUE(ValidateBackupId(id).ok()) << id;
  EXPECT_EQ(id.find('/'), std::string::npos);
  EXPECT_NE(id.find("20251122T060000Z"), std::string::npos) << id;
  EXPECT_TRUE(ValidateBackupId(NewBackupId("...", 0)).ok());
}

}  // namespace
}  // namespace cairn
