#include "server/job_events.h"

namespace cairn {

uint64_t JobEvents::Version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return version_;
}

void JobEvents::Notify() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++version_;
  }
  cv_.notify_all();
}

uint64_t JobEvents::WaitForChange(
    uint64_t seen, std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return version_ != seen || shutdown_; });
  return version_;
}

void JobEvents::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

bool JobEvents::IsShutdown() const {
  std::lock_guard<std::mutex> lock(mu_);
  return shutdown_;
}

}  // namespace cairn
