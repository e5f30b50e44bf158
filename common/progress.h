// Progress of a long operation (backup, restore, verify): bytes done of a
// total, with rate and ETA, and a terminal renderer for the CLIs.
//
// Thread safety: ProgressCounter is thread-safe (atomics); ProgressPrinter
// is driven from one thread.
#ifndef CAIRN_COMMON_PROGRESS_H_
#define CAIRN_COMMON_PROGRESS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace cairn {

struct ProgressSnapshot {
  uint64_t done_bytes = 0;
  uint64_t total_bytes = 0;
  double elapsed_seconds = 0;
  double bytes_per_second = 0;  // average since start
  double eta_seconds = -1;      // -1 when unknown
};

// Shared by the workers of one operation.
class ProgressCounter {
 public:
  explicit ProgressCounter(uint64_t total_bytes);
  void Add(uint64_t bytes) {
    done_.fetch_add(bytes, std::memory_order_relaxed);
  }
  ProgressSnapshot Snapshot() const;

 private:
  uint64_t total_;
  std::atomic<uint64_t> done_{0};
  std::chrono::steady_clock::time_point start_;
};

// "1.50 GiB", "512 B".
std::string FormatBytes(uint64_t bytes);
// "3m05s", "42s".
std::string FormatDuration(double seconds);
// "  1.2 GiB / 2.0 GiB  60%  310 MiB/s  ETA 3s"
std::string FormatProgress(const ProgressSnapshot& s);

// Prints progress lines to `out` (stderr by default): redrawn in place on a
// terminal, one line every `interval` otherwise. Call Update() often; it
// rate-limits itself. Finish() prints the final line.
class ProgressPrinter {
 public:
  ProgressPrinter(
      std::string label, FILE* out = stderr,
      std::chrono::milliseconds interval = std::chrono::milliseconds(5000));
  void Update(const ProgressSnapshot& s);
  void Finish(const ProgressSnapshot& s);

 private:
  std::string label_;
  FILE* out_;
  bool tty_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace cairn

#endif  // CAIRN_COMMON_PROGRESS_H_
