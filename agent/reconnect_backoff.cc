#include "agent/reconnect_backoff.h"

#include <algorithm>
#include <cmath>

namespace cairn {

std::chrono::milliseconds BackoffDelay(const BackoffPolicy& policy, int attempt,
                                       double unit_random) {
  const double max_ms =
      static_cast<double>(std::max<int64_t>(0, policy.max_delay.count()));
  const double initial_ms = std::min(
      max_ms,
      static_cast<double>(std::max<int64_t>(0, policy.initial_delay.count())));
  const double multiplier = std::max(1.0, policy.multiplier);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double u = std::clamp(unit_random, 0.0, 1.0);
  attempt = std::max(0, attempt);
  // Grow step by step so a large attempt count cannot overflow.
  double base = initial_ms;
  for (int i = 0; i < attempt && base < max_ms; ++i) base *= multiplier;
  base = std::min(base, max_ms);
  double delay = base * (1.0 - jitter * u);
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(delay)));
}

ReconnectBackoff::ReconnectBackoff(BackoffPolicy policy, uint64_t seed)
    : policy_(policy), rng_(seed) {}

std::chrono::milliseconds ReconnectBackoff::NextDelay() {
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  auto delay = BackoffDelay(policy_, attempt_, dist(rng_));
  if (attempt_ < 1000) ++attempt_;
  return delay;
}

}  // namespace cairn
