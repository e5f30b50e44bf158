// WriteDerivedImage (media_agent/derived_image.h) on a real repository and a
// real qcow2 overlay (qemu-img, qemu-io, qemu-nbd): untouched chunks keep
// the base's ids unread, written ones are stored, the grown end is zeros.
#include "media_agent/derived_image.h"

#include <gtest/gtest.h>

#include "common/image_reader.h"
#include "common/process_util.h"
#include "common/subprocess.h"
#include "media_agent/image_customizer.h"
#include "repo_fixture.h"

namespace cairn {
namespace {

constexpr uint64_t kChunk = 64 << 10;

class DerivedImageTest : public RepoFixture {
 protected:
  void SetUp() override {
    for (const char* tool : {"qemu-img", "qemu-io", "qemu-nbd"}) {
      if (!FindProgram("", tool, "qemu-utils").ok())
        GTEST_SKIP() << tool << " not installed";
    }
    RepoFixture::SetUp();
  }

  void Run(const std::vector<std::string>& argv) {
    auto r = RunCommand(argv, absl::Seconds(60));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->exit_code, 0) << argv[0] << ": " << r->output;
  }
};

TEST_F(DerivedImageTest, SharesUntouchedChunksAndStoresWhatTheOverlayWrote) {
  // 16 chunks of random data with chunk 5 all zeros.
  std::string data = testing::PseudoRandomBytes(16 * kChunk, 7);
  std::fill(data.begin() + 5 * kChunk, data.begin() + 6 * kChunk, '\0');
  BackupData("base", data);
  auto base = repo_->LoadManifest("base", nullptr);
  ASSERT_TRUE(base.ok()) << base.status();

  // An overlay two chunks larger, with 4 KiB written in chunk 2 and in the
  // last chunk (17); chunk 16 stays unwritten.
  const std::string overlay = dir_.Sub("ov.qcow2");
  Run({"qemu-img", "create", "-q", "-f", "qcow2", "-b", dir_.Sub("img-base"),
       "-F", "raw", overlay, std::to_string(18 * kChunk)});
  Run({"qemu-io", "-f", "qcow2", "-c",
       "write -P 0xab " + std::to_string(2 * kChunk + 8192) + " 4096",
       overlay});
  Run({"qemu-io", "-f", "qcow2", "-c",
       "write -P 0xcd " + std::to_string(17 * kChunk) + " 4096", overlay});
  std::string expected = data + std::string(2 * kChunk, '\0');
  std::fill(expected.begin() + 2 * kChunk + 8192,
            expected.begin() + 2 * kChunk + 8192 + 4096, '\xab');
  std::fill(expected.begin() + 17 * kChunk,
            expected.begin() + 17 * kChunk + 4096, '\xcd');

  DerivedImageOptions o;
  o.overlay_path = overlay;
  o.base = &*base;
  o.new_id = "derived";
  o.source = "host";
  o.created_unix_us = 42;
  o.profile_ref = "abc";
  uint64_t last_done = 0;
  o.progress = [&](uint64_t done, uint64_t total) {
    EXPECT_EQ(total, 18 * kChunk);
    EXPECT_GE(done, last_done);
    last_done = done;
  };
  auto session = repo_->BeginBackup();
  Manifest m;
  auto stats = WriteDerivedImage(o, session.get(), &m);
  ASSERT_TRUE(stats.ok()) << stats.status();
  session.reset();
  EXPECT_EQ(last_done, 18 * kChunk);

  EXPECT_EQ(stats->chunks, 18u);
  EXPECT_EQ(stats->chunks_reused, 15u);  // every base chunk but chunk 2
  EXPECT_EQ(stats->chunks_read, 2u);     // chunks 2 and 17; 16 is not read
  EXPECT_EQ(stats->chunks_new, 2u);
  EXPECT_EQ(stats->bytes_read, 2 * kChunk);
  EXPECT_EQ(m.kind, BackupKind::kCustomized);
  EXPECT_EQ(m.parent_id, "base");
  EXPECT_EQ(m.profile_ref, "abc");
  EXPECT_EQ(m.image_size, 18 * kChunk);
  for (uint64_t i = 0; i < 16; ++i) {
    if (i == 2) {
      EXPECT_NE(m.chunks[i], base->chunks[i]);
    } else {
      EXPECT_EQ(m.chunks[i], base->chunks[i]) << i;
    }
  }
  EXPECT_TRUE(m.chunks[5].IsZero());
  EXPECT_TRUE(m.chunks[16].IsZero());

  // Committed, and it reads back as base + the overlay's writes.
  auto reader = ImageReader::Open(repo_.get(), "derived", nullptr);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string got(expected.size(), '\0');
  ASSERT_TRUE((*reader)->ReadAt(0, got.size(), got.data()).ok());
  EXPECT_TRUE(got == expected);
}

TEST_F(DerivedImageTest, RefusesATakenIdAndAMissingBaseChunk) {
  std::string data = testing::PseudoRandomBytes(4 * kChunk, 9);
  BackupData("base", data);
  auto base = repo_->LoadManifest("base", nullptr);
  ASSERT_TRUE(base.ok());
  const std::string overlay = dir_.Sub("ov.qcow2");
  Run({"qemu-img", "create", "-q", "-f", "qcow2", "-b", dir_.Sub("img-base"),
       "-F", "raw", overlay});
  DerivedImageOptions o;
  o.overlay_path = overlay;
  o.base = &*base;
  o.new_id = "base";  // taken
  Manifest m;
  {
    auto session = repo_->BeginBackup();
    EXPECT_EQ(WriteDerivedImage(o, session.get(), &m).status().code(),
              absl::StatusCode::kAlreadyExists);
  }
  o.new_id = "../x";
  {
    auto session = repo_->BeginBackup();
    EXPECT_EQ(WriteDerivedImage(o, session.get(), &m).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  // A base manifest naming a chunk the store lacks: DataLoss, no manifest.
  Manifest forged = *base;
  forged.chunks[1] = ChunkId::FromBytes(
      reinterpret_cast<const uint8_t*>("0123456789abcdef0123456789abcdef"));
  o.base = &forged;
  o.new_id = "derived";
  {
    auto session = repo_->BeginBackup();
    EXPECT_EQ(WriteDerivedImage(o, session.get(), &m).status().code(),
              absl::StatusCode::kDataLoss);
  }
  auto exists = repo_->manifests().Exists("derived");
  ASSERT_TRUE(exists.ok());
  EXPECT_FALSE(*exists);
}

TEST_F(DerivedImageTest, APlanThatChangesNothingGivesTheBackupChunkForChunk) {
  std::string data = testing::PseudoRandomBytes(8 * kChunk, 3);
  BackupData("base", data);
  auto base = repo_->LoadManifest("base", nullptr);
  ASSERT_TRUE(base.ok());
  v1::CustomizationPlan plan;
  plan.set_format_version(1);
  plan.set_source_disk_bytes(data.size());
  plan.set_target_disk_bytes(data.size());
  plan.add_steps("nothing to change");
  EXPECT_FALSE(PlanChangesAnything(plan));
  ImageCustomizerOptions co;
  co.base_path = dir_.Sub("img-base");
  co.work_dir = dir_.Sub("");
  co.plan = plan;
  auto overlay = CustomizeImage(co);  // no appliance is started
  ASSERT_TRUE(overlay.ok()) << overlay.status();
  EXPECT_EQ(overlay->virtual_size, data.size());
  ASSERT_EQ(overlay->report.steps_size(), 1);
  EXPECT_EQ(overlay->report.steps(0).step(), "nothing");
  DerivedImageOptions o;
  o.overlay_path = overlay->overlay_path;
  o.base = &*base;
  o.new_id = "same";
  auto session = repo_->BeginBackup();
  Manifest m;
  auto stats = WriteDerivedImage(o, session.get(), &m);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->chunks_read, 0u);
  EXPECT_EQ(stats->chunks_new, 0u);
  EXPECT_EQ(m.chunks, base->chunks);
  plan.set_rebuild_initramfs(true);
  EXPECT_TRUE(PlanChangesAnything(plan));
}

}  // namespace
}  // namespace cairn
