// The agent's reconnect policy: exponential, bounded, jittered, and
// reproducible with a seed.
#include <gtest/gtest.h>

#include "agent/reconnect_backoff.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

TEST(BackoffDelayTest, GrowsExponentiallyWithoutJitter) {
  BackoffPolicy p;
  p.initial_delay = milliseconds(100);
  p.max_delay = milliseconds(1000);
  p.multiplier = 2.0;
  p.jitter = 0.0;
  EXPECT_EQ(BackoffDelay(p, 0, 0.5), milliseconds(100));
  EXPECT_EQ(BackoffDelay(p, 1, 0.5), milliseconds(200));
  EXPECT_EQ(BackoffDelay(p, 2, 0.5), milliseconds(400));
  EXPECT_EQ(BackoffDelay(p, 3, 0.5), milliseconds(800));
  EXPECT_EQ(BackoffDelay(p, 4, 0.5), milliseconds(1000));  // capped
  EXPECT_EQ(BackoffDelay(p, 1'000'000, 0.5), milliseconds(1000));
}

TEST(BackoffDelayTest, JitterOnlyShortensAndStaysInBounds) {
  BackoffPolicy p;
  p.initial_delay = milliseconds(1000);
  p.max_delay = milliseconds(8000);
  p.jitter = 0.5;
  EXPECT_EQ(BackoffDelay(p, 0, 0.0), milliseconds(1000));
  EXPECT_EQ(BackoffDelay(p, 0, 0.5), milliseconds(750));
  EXPECT_EQ(BackoffDelay(p, 10, 0.999999), milliseconds(4000));
  for (int attempt = 0; attempt < 20; ++attempt) {
    for (double u : {0.0, 0.25, 0.5, 0.75, 0.99}) {
      auto d = BackoffDelay(p, attempt, u);
      EXPECT_LE(d, p.max_delay);
      EXPECT_GE(d, milliseconds(500));
    }
  }
}

TEST(BackoffDelayTest, ClampsNonsense) {
  BackoffPolicy p;
  p.initial_delay = milliseconds(5000);
  p.max_delay = milliseconds(1000);  // initial above max: max wins
  p.multiplier = 0.1;                // below 1: treated as 1
  p.jitter = 7;                      // above 1: treated as 1
  EXPECT_EQ(BackoffDelay(p, -3, 0.0), milliseconds(1000));
  EXPECT_EQ(BackoffDelay(p, 5, 2.0), milliseconds(0));
}

TEST(ReconnectBackoffTest, SameSeedSameSequenceAndResetRestarts) {
  BackoffPolicy p;
  p.initial_delay = milliseconds(200);
  p.max_delay = milliseconds(5000);
  ReconnectBackoff a(p, 42), b(p, 42), c(p, 43);
  std::vector<milliseconds> sa, sb, sc;
  for (int i = 0; i < 12; ++i) {
    sa.push_back(a.NextDelay());
    sb.push_back(b.NextDelay());
    sc.push_back(c.NextDelay());
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_LE(sa[i], p.max_delay) << i;
    auto base = std::min<int64_t>(p.max_delay.count(), 200LL << i);
    EXPECT_GE(sa[i].count(), static_cast<int64_t>(base * (1 - p.jitter)) - 1)
        << i;
  }
  EXPECT_EQ(a.attempt(), 12);
  a.Reset();
  EXPECT_EQ(a.attempt(), 0);
  EXPECT_LE(a.NextDelay(), p.initial_delay);
}

}  // namespace
}  // namespace cairn
