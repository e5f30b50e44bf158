#include "media_agent/garbage_collector.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "agent/image_restore.h"
#include "common/image_reader.h"
#include "media_agent/verifier.h"
#include "tests/testing/forwarding_sink.h"
#include "tests/unit/repo_fixture.h"

namespace cairn {
namespace {

// Forwards to a session but records the manifest instead of committing it.
class HoldCommit : public testing::ForwardingSink {
 public:
  using ForwardingSink::ForwardingSink;
  Status Commit(const std::string&, std::string_view m) override {
    manifest = std::string(m);
    return absl::OkStatus();
  }
  std::string manifest;
};

class GarbageCollectorTest : public RepoFixture {
 protected:
  std::string pending_manifest_;
  uint64_t ChunkCount() {
    uint64_t n = 0;
    EXPECT_TRUE(repo_->chunks()
                    .ForEach([&](const ChunkId&) {
                      ++n;
                      return absl::OkStatus();
                    })
                    .ok());
    return n;
  }
};

TEST_F(GarbageCollectorTest, RemovesOnlyUnreferencedChunks) {
  std::string shared = testing::TextLikeBytes(512 << 10, 1);
  BackupData("keep", shared + testing::PseudoRandomBytes(256 << 10, 2));
  BackupData("drop", shared + testing::PseudoRandomBytes(256 << 10, 3));
  EXPECT_EQ(ChunkCount(), 16u);
  ASSERT_TRUE(repo_->DeleteBackup("drop").ok());

  GcOptions dry;
  dry.dry_run = true;
  auto d = CollectGarbage(repo_.get(), dry);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->chunks_removed, 4u);
  EXPECT_EQ(ChunkCount(), 16u);  // a dry run removes nothing

  auto r = CollectGarbage(repo_.get(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks_removed, 4u);
  EXPECT_GT(r->bytes_removed, 4u * (256 << 10) / 4);
  EXPECT_EQ(r->chunks_referenced, 12u);
  EXPECT_EQ(ChunkCount(), 12u);
  EXPECT_TRUE(VerifyRepository(repo_.get(), {})->ok());
  EXPECT_EQ(CollectGarbage(repo_.get(), {})->chunks_removed, 0u);
}

TEST_F(GarbageCollectorTest, DamagedManifestStopsGcBeforeRemovingAnything) {
  BackupData("a", testing::TextLikeBytes(256 << 10, 1));
  BackupData("b", testing::TextLikeBytes(256 << 10, 2));
  ASSERT_TRUE(repo_->DeleteBackup("a").ok());
  testing::FlipByteOrDie(*repo_->manifests().Path("b"), 30);
  auto r = CollectGarbage(repo_.get(), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ChunkCount(), 8u);
}

// A backup that finds an unreferenced chunk present (dedup) while a GC runs
// must keep it: the sweep happens between the writer's HasChunks and its
// commit.
TEST_F(GarbageCollectorTest, ChunkPinnedByWriterInFlightSurvivesSweep) {
  std::string data = testing::TextLikeBytes(512 << 10, 7);
  BackupData("old", data);
  ASSERT_TRUE(
      repo_->DeleteBackup("old").ok());  // all 8 chunks now unreferenced

  std::string path = dir_.Sub("img-new");
  testing::WriteFileOrDie(path, data);
  GcOptions gc;
  std::unique_ptr<BackupSession> writer;
  gc.after_mark = [&] {
    // The writer starts after marking: it dedups against the doomed chunks
    // and holds its commit until the sweep is over.
    writer = repo_->BeginBackup();
    BackupRequest req;
    req.source_path = path;
    req.source_name = "host";
    req.backup_id = "new";
    req.chunk_size = 64 << 10;
    HoldCommit hold(writer.get());
    auto r = RunBackup(req, &hold);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->stats.chunks_new, 0u);  // everything deduplicated
    pending_manifest_ = hold.manifest;
  };
  auto r = CollectGarbage(repo_.get(), gc);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks_removed, 0u);
  EXPECT_EQ(r->chunks_kept_in_flight, 8u);
  ASSERT_TRUE(writer->Commit("new", pending_manifest_).ok());
  writer.reset();
  EXPECT_TRUE(VerifyRepository(repo_.get(), {})->ok());
}

// Real threads: backups of images sharing content with pruned backups run
// while GC runs repeatedly; every committed backup must verify and restore.
TEST_F(GarbageCollectorTest, ConcurrentWritersAndGcNeverLoseAChunk) {
  std::string base = testing::TextLikeBytes(1 << 20, 11);
  std::atomic<bool> stop{false};
  std::atomic<int> committed{0};
  std::thread writer([&] {
    for (int i = 0; i < 12; ++i) {
      std::string data = base;
      data[(i * 70001) % data.size()] ^= 1;
      std::string id = "w" + std::to_string(i);
      BackupData(id, data);
      ++committed;
      if (i % 2 == 0) ASSERT_TRUE(repo_->DeleteBackup(id).ok());
    }
    stop = true;
  });
  int gcs = 0;
  while (!stop || gcs == 0) {
    auto r = CollectGarbage(repo_.get(), {});
    ASSERT_TRUE(r.ok()) << r.status();
    ++gcs;
  }
  writer.join();
  ASSERT_TRUE(CollectGarbage(repo_.get(), {}).ok());
  auto v = VerifyRepository(repo_.get(), {});
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok()) << (v->bad_chunks.empty() ? "" : v->bad_chunks[0].error);
  EXPECT_EQ(v->backups_checked, 6u);
  EXPECT_GE(gcs, 1);
}

TEST_F(GarbageCollectorTest, OnlyOneGcAtATime) {
  ASSERT_TRUE(repo_->BeginGc().ok());
  EXPECT_EQ(CollectGarbage(repo_.get(), {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  repo_->EndGc();
  EXPECT_TRUE(CollectGarbage(repo_.get(), {}).ok());
}

}  // namespace
}  // namespace cairn
