#include "common/progress.h"

#include <unistd.h>

#include <cmath>

#include "absl/strings/str_format.h"

namespace cairn {

ProgressCounter::ProgressCounter(uint64_t total_bytes)
    : total_(total_bytes), start_(std::chrono::steady_clock::now()) {}

ProgressSnapshot ProgressCounter::Snapshot() const {
  ProgressSnapshot s;
  s.done_bytes = done_.load(std::memory_order_relaxed);
  s.total_bytes = total_;
  s.elapsed_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  if (s.elapsed_seconds > 0)
    s.bytes_per_second = s.done_bytes / s.elapsed_seconds;
  if (s.bytes_per_second > 0 && total_ >= s.done_bytes) {
    s.eta_seconds = (total_ - s.done_bytes) / s.bytes_per_second;
  }
  return s;
}

std::string FormatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return absl::StrFormat("%d B", bytes);
  return absl::StrFormat("%.2f %s", v, kUnits[u]);
}

std::string FormatDuration(double seconds) {
  if (seconds < 0 || !std::isfinite(seconds)) return "?";
  auto s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return absl::StrFormat("%ds", s);
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string FormatProgress(const ProgressSnapshot& s) {
  double pct = s.total_bytes ? 100.0 * s.done_bytes / s.total_bytes : 100.0;
  return absl::StrFormat("%s / %s  %3.0f%%  %s/s  ETA %s",
                         FormatBytes(s.done_bytes), FormatBytes(s.total_bytes),
                         pct,
                         FormatBytes(static_cast<uint64_t>(s.bytes_per_second)),
                         FormatDuration(s.eta_seconds));
}

ProgressPrinter::ProgressPrinter(std::string label, FILE* out,
                                 std::chrono::milliseconds interval)
    : label_(std::move(label)),
      out_(out),
      tty_(isatty(fileno(out)) == 1),
      interval_(tty_ ? std::chrono::milliseconds(200) : interval),
      last_(std::chrono::steady_clock::now()) {}

void ProgressPrinter::Update(const ProgressSnapshot& s) {
  auto now = std::chrono::steady_clock::now();
  if (now - last_ < interval_) return;
  last_ = now;
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s %s", label_.c_str(),
                 FormatProgress(s).c_str());
  } else {
    std::fprintf(out_, "%s %s\n", label_.c_str(), FormatProgress(s).c_str());
  }
  std::fflush(out_);
}

void ProgressPrinter::Finish(const ProgressSnapshot& s) {
  std::fprintf(out_, "%s%s %s in %s\n", tty_ ? "\r\033[K" : "", label_.c_str(),
               FormatProgress(s).c_str(),
               FormatDuration(s.elapsed_seconds).c_str());
  std::fflush(out_);
}

}  // namespace cairn
