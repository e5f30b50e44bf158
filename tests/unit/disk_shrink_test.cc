// The geometry and checks of shrinking a disk (media_agent/disk_shrink.h).
#include "media_agent/disk_shrink.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace cairn {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

// The debian-bios-ahci fixture: MBR, one partition from 1 MiB to the end of
// its 2 GiB disk.
ShrinkRequest Fixture(uint64_t target) {
  ShrinkRequest r;
  r.target_disk_bytes = target;
  r.sector_size = 512;
  r.gpt = false;
  r.last_partition = 1;
  r.last_start_bytes = kMiB;
  r.last_end_bytes = 2 * kGiB;
  return r;
}

TEST(PlanShrink, MbrEndsAtTheTargetsEnd) {
  auto g = PlanShrink(Fixture(3 * kGiB / 2));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(g->shrink_partition);
  EXPECT_EQ(g->new_end_bytes, 3 * kGiB / 2);
  EXPECT_EQ(g->new_end_sector, static_cast<int64_t>(3 * kGiB / 2 / 512) - 1);
  EXPECT_EQ(g->new_partition_bytes, 3 * kGiB / 2 - kMiB);
}

TEST(PlanShrink, GptLeavesRoomForTheBackupHeaderAndAligns) {
  ShrinkRequest r = Fixture(3 * kGiB / 2);
  r.gpt = true;
  auto g = PlanShrink(r);
  ASSERT_TRUE(g.ok()) << g.status();
  // 33 sectors at the end, then down to a 1 MiB boundary.
  EXPECT_EQ(g->new_end_bytes, 3 * kGiB / 2 - kMiB);
  EXPECT_EQ(g->new_end_bytes % kShrinkAlignBytes, 0u);
  EXPECT_LE(g->new_end_bytes + 33 * 512, r.target_disk_bytes);
  EXPECT_EQ(g->new_end_sector * 512 + 512,
            static_cast<int64_t>(g->new_end_bytes));
}

TEST(PlanShrink, UnalignedTargetRoundsDown) {
  auto g = PlanShrink(Fixture(kGiB + 12345));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->new_end_bytes, kGiB);
  ShrinkRequest r = Fixture(kGiB + 4096);
  r.sector_size = 4096;
  r.gpt = true;  // 33 4 KiB sectors: below 1 GiB, so 1 GiB - 1 MiB
  g = PlanShrink(r);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->new_end_bytes, kGiB - kMiB);
  EXPECT_EQ(g->new_end_sector, static_cast<int64_t>((kGiB - kMiB) / 4096) - 1);
}

TEST(PlanShrink, PartitionsThatAlreadyFitStay) {
  ShrinkRequest r = Fixture(3 * kGiB / 2);
  r.last_end_bytes = kGiB;
  auto g = PlanShrink(r);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_FALSE(g->shrink_partition);
  EXPECT_EQ(g->new_end_bytes, kGiB);
  EXPECT_EQ(g->new_partition_bytes, kGiB - kMiB);
}

TEST(PlanShrink, AnotherPartitionBeyondTheEndIsRefused) {
  ShrinkRequest r = Fixture(kGiB);
  r.last_partition = 3;
  r.others_end_bytes = kGiB + kMiB;  // e.g. a swap partition before root
  auto g = PlanShrink(r);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(g.status().message()),
              HasSubstr("other than the last"));
}

TEST(PlanShrink, LastPartitionWouldVanish) {
  ShrinkRequest r = Fixture(kGiB);
  r.last_start_bytes = kGiB - kMiB / 2;
  auto g = PlanShrink(r);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PlanShrink, BadInput) {
  ShrinkRequest r = Fixture(kGiB);
  r.sector_size = 0;
  EXPECT_EQ(PlanShrink(r).status().code(), absl::StatusCode::kInvalidArgument);
  r = Fixture(kGiB);
  r.last_end_bytes = r.last_start_bytes;
  EXPECT_EQ(PlanShrink(r).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShrinkHeadroom, LargerOf64MiBAnd5Percent) {
  EXPECT_EQ(ShrinkHeadroomBytes(0), 64 * kMiB);
  EXPECT_EQ(ShrinkHeadroomBytes(kGiB), 64 * kMiB);
  EXPECT_EQ(ShrinkHeadroomBytes(100 * kGiB), 5 * kGiB);
}

TEST(ShrunkFileSystemBytes, FitsAndRoundsToBlocks) {
  // The fixture's root: minimum 294536 blocks of 4 KiB (about 1.12 GiB).
  const uint64_t minimum = 294536ull * 4096;
  auto fs = ShrunkFileSystemBytes(1, 3 * kGiB / 2 - kMiB + 512, minimum, 4096,
                                  3 * kGiB / 2);
  ASSERT_TRUE(fs.ok()) << fs.status();
  EXPECT_EQ(*fs, 3 * kGiB / 2 - kMiB);
}

TEST(ShrunkFileSystemBytes, TooSmallNamesTheSizes) {
  const uint64_t minimum = 294536ull * 4096;
  auto fs = ShrunkFileSystemBytes(1, kGiB / 2 - kMiB, minimum, 4096, kGiB / 2);
  ASSERT_FALSE(fs.ok());
  EXPECT_EQ(fs.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string msg(fs.status().message());
  EXPECT_THAT(msg, HasSubstr("too small"));
  EXPECT_THAT(msg, HasSubstr(std::to_string(minimum)));
  EXPECT_THAT(msg, HasSubstr(std::to_string(kGiB / 2)));
  EXPECT_THAT(msg, HasSubstr("headroom"));
  // The headroom alone can refuse: the minimum fits, the headroom does not.
  fs = ShrunkFileSystemBytes(1, minimum + kMiB, minimum, 4096, kGiB);
  ASSERT_FALSE(fs.ok());
  EXPECT_EQ(fs.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ShrunkFileSystemBytes(1, kGiB, 0, 0, kGiB).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseResize2fsMinimum, Output) {
  auto n = ParseResize2fsMinimum(
      "resize2fs 1.47.0 (5-Feb-2023)\n"
      "Estimated minimum size of the filesystem: 294536\n");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 294536u);
  EXPECT_FALSE(ParseResize2fsMinimum("resize2fs: Bad magic number").ok());
  EXPECT_FALSE(
      ParseResize2fsMinimum("Estimated minimum size of the filesystem: x")
          .ok());
}

TEST(CheckShrinkableFileSystem, ExtOnly) {
  EXPECT_TRUE(CheckShrinkableFileSystem(1, "ext4").ok());
  EXPECT_TRUE(CheckShrinkableFileSystem(1, "ext3").ok());
  EXPECT_TRUE(CheckShrinkableFileSystem(1, "ext2").ok());
  Status xfs = CheckShrinkableFileSystem(2, "xfs");
  EXPECT_EQ(xfs.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(xfs.message()), HasSubstr("xfs cannot shrink"));
  Status btrfs = CheckShrinkableFileSystem(2, "btrfs");
  EXPECT_EQ(btrfs.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(btrfs.message()), HasSubstr("only ext2/3/4"));
  EXPECT_FALSE(CheckShrinkableFileSystem(2, "").ok());
}

}  // namespace
}  // namespace cairn
