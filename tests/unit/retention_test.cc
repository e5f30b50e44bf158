#include "media_agent/retention.h"

#include <gtest/gtest.h>

#include <map>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "tests/unit/repo_fixture.h"

namespace cairn {
namespace {

int64_t At(int y, int mo, int d, int h = 12) {
  return absl::ToUnixMicros(absl::FromCivil(
      absl::CivilSecond(y, mo, d, h, 0, 0), absl::UTCTimeZone()));
}

std::map<std::string, bool> Kept(const std::vector<RetentionDecision>& ds) {
  std::map<std::string, bool> m;
  for (const auto& d : ds) m[d.backup.backup_id] = d.keep;
  return m;
}

TEST(RetentionTest, KeepLast) {
  std::vector<BackupRef> b = {{"b1", "h", At(2026, 1, 1)},
                              {"b2", "h", At(2026, 1, 2)},
                              {"b3", "h", At(2026, 1, 3)}};
  RetentionPolicy p;
  p.keep_last = 2;
  auto k = Kept(*ApplyRetention(b, p));
  EXPECT_EQ(k, (std::map<std::string, bool>{
                   {"b1", false}, {"b2", true}, {"b3", true}}));
}

TEST(RetentionTest, DailyKeepsNewestOfEachDay) {
  std::vector<BackupRef> b = {{"d1-early", "h", At(2026, 3, 1, 1)},
                              {"d1-late", "h", At(2026, 3, 1, 23)},
                              {"d2", "h", At(2026, 3, 2)},
                              {"d3-a", "h", At(2026, 3, 3, 2)},
                              {"d3-b", "h", At(2026, 3, 3, 4)}};
  RetentionPolicy p;
  p.keep_daily = 2;
  auto k = Kept(*ApplyRetention(b, p));
  EXPECT_TRUE(k["d3-b"]);
  EXPECT_TRUE(k["d2"]);
  EXPECT_FALSE(k["d3-a"]);
  EXPECT_FALSE(k["d1-late"]);
  EXPECT_FALSE(k["d1-early"]);
}

TEST(RetentionTest, WeeklyMonthlyYearlyCombineWithReasons) {
  std::vector<BackupRef> b;
  // One backup a day for 400 days from 2025-01-01.
  for (int i = 0; i < 400; ++i) {
    absl::CivilDay day = absl::CivilDay(2025, 1, 1) + i;
    b.push_back(
        {"day" + std::to_string(i), "h",
         absl::ToUnixMicros(absl::FromCivil(day, absl::UTCTimeZone()))});
  }
  RetentionPolicy p;
  p.keep_daily = 7;
  p.keep_weekly = 4;
  p.keep_monthly = 6;
  p.keep_yearly = 2;
  auto ds = *ApplyRetention(b, p);
  int kept = 0;
  for (const auto& d : ds) kept += d.keep;
  // day399 is Wed 2026-02-04. Daily: days 393-399 (7). Weekly: the weeks
  // of Feb 2 and Jan 26 are already kept by daily; Sun Jan 25 (day389) and
  // Sun Jan 18 (day382) are added. Monthly: Feb and Jan already kept; Dec 31
  // (day364), Nov 30 (day333), Oct 31 (day303), Sep 30 (day272) added.
  // Yearly: 2026 and 2025 (day364) already kept. 7 + 2 + 4 = 13.
  auto k = Kept(ds);
  EXPECT_EQ(kept, 13);
  for (int d : {393, 399, 389, 382, 364, 333, 303, 272}) {
    EXPECT_TRUE(k["day" + std::to_string(d)]) << d;
  }
  for (int d : {0, 388, 392, 363, 271})
    EXPECT_FALSE(k["day" + std::to_string(d)]) << d;
  for (const auto& d : ds) {
    if (d.backup.backup_id == "day364") {
      bool yearly = false;
      for (const auto& r : d.reasons) yearly |= r == "yearly 2025";
      EXPECT_TRUE(yearly);
    }
  }
}

TEST(RetentionTest, WeeksStartOnMonday) {
  // 2026-11-15 is a Sunday, 2026-11-16 a Monday.
  std::vector<BackupRef> b = {{"sat", "h", At(2026, 11, 14)},
                              {"sun", "h", At(2026, 11, 15)},
                              {"mon", "h", At(2026, 11, 16)}};
  RetentionPolicy p;
  p.keep_weekly = 2;
  auto k = Kept(*ApplyRetention(b, p));
  EXPECT_TRUE(k["mon"]);
  EXPECT_TRUE(k["sun"]);  // newest of the previous week
  EXPECT_FALSE(k["sat"]);
}

TEST(RetentionTest, SourcesAreIndependentAndEmptyPolicyRefused) {
  std::vector<BackupRef> b = {{"a1", "a", At(2026, 1, 1)},
                              {"a2", "a", At(2026, 1, 2)},
                              {"b1", "b", At(2025, 1, 1)}};
  RetentionPolicy p;
  p.keep_last = 1;
  auto k = Kept(*ApplyRetention(b, p));
  EXPECT_TRUE(k["a2"]);
  EXPECT_FALSE(k["a1"]);
  EXPECT_TRUE(k["b1"]);
  EXPECT_EQ(ApplyRetention(b, RetentionPolicy{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  p.keep_daily = -1;
  EXPECT_FALSE(ApplyRetention(b, p).ok());
}

class PruneTest : public RepoFixture {};

TEST_F(PruneTest, DryRunListsAndRealRunRemoves) {
  BackupData("b1", testing::TextLikeBytes(128 << 10, 1));
  BackupData("b2", testing::TextLikeBytes(128 << 10, 2));
  BackupData("b3", testing::TextLikeBytes(128 << 10, 3));
  PruneOptions o;
  o.policy.keep_last = 1;
  o.dry_run = true;
  auto dry = Prune(repo_.get(), o);
  ASSERT_TRUE(dry.ok());
  EXPECT_EQ(dry->removed, 0u);
  int would_go = 0;
  for (const auto& d : dry->decisions) would_go += !d.keep;
  EXPECT_EQ(would_go, 2);
  EXPECT_EQ(repo_->manifests().List()->size(), 3u);
  o.dry_run = false;
  auto real = Prune(repo_.get(), o);
  ASSERT_TRUE(real.ok());
  EXPECT_EQ(real->removed, 2u);
  EXPECT_EQ(repo_->manifests().List()->size(), 1u);
}

}  // namespace
}  // namespace cairn
