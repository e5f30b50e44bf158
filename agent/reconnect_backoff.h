// ReconnectBackoff: how long the agent waits before it dials the storage
// manager again after its command stream broke (DESIGN.md section 2: the
// agent dials out and keeps the stream alive).
//
// Exponential backoff with jitter, bounded: attempt n waits
//   base(n)  = min(max_delay, initial_delay * multiplier^n)
//   delay(n) = base(n) * (1 - jitter * u),  u uniform in [0, 1)
// so a delay is never above max_delay and never below
// (1 - jitter) * base(n). The jitter spreads the reconnects of many agents
// after a server restart. Knows nothing of gRPC.
//
// Thread safety: BackoffDelay is a pure function; a ReconnectBackoff is not
// thread-safe (one per connection loop).
#ifndef CAIRN_AGENT_RECONNECT_BACKOFF_H_
#define CAIRN_AGENT_RECONNECT_BACKOFF_H_

#include <chrono>
#include <cstdint>
#include <random>

namespace cairn {

struct BackoffPolicy {
  std::chrono::milliseconds initial_delay{500};
  std::chrono::milliseconds max_delay{60'000};
  double multiplier = 2.0;  // >= 1
  double jitter = 0.3;      // fraction in [0, 1]
};

// The delay before reconnect attempt `attempt` (0 for the first retry),
// with `unit_random` in [0, 1) as the jitter draw. Out-of-range inputs are
// clamped (negative attempt = 0, multiplier < 1 = 1, jitter into [0, 1]).
std::chrono::milliseconds BackoffDelay(const BackoffPolicy& policy, int attempt,
                                       double unit_random);

class ReconnectBackoff {
 public:
  // `seed` makes the jitter sequence reproducible (tests); the daemon seeds
  // from std::random_device.
  ReconnectBackoff(BackoffPolicy policy, uint64_t seed);

  // The delay before the next attempt; each call counts one attempt.
  std::chrono::milliseconds NextDelay();
  // After a stream that worked: the next delay starts from initial_delay.
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }
  const BackoffPolicy& policy() const { return policy_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

}  // namespace cairn

#endif  // CAIRN_AGENT_RECONNECT_BACKOFF_H_
