// JobEvents: a change counter for jobs that watchers block on. The JobEngine
// calls Notify() after every job state or progress change it writes; a
// watcher (Admin.WatchJob) remembers the Version() it last saw and waits for
// a newer one, then re-reads the job from the catalog.
//
// Thread safety: thread-safe.
#ifndef CAIRN_SERVER_JOB_EVENTS_H_
#define CAIRN_SERVER_JOB_EVENTS_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace cairn {

class JobEvents {
 public:
  uint64_t Version() const;
  // Some job changed: wakes every waiter.
  void Notify();
  // Blocks until Version() != `seen`, Shutdown() or `deadline`, whichever
  // comes first; returns the version then.
  uint64_t WaitForChange(uint64_t seen,
                         std::chrono::steady_clock::time_point deadline) const;
  // Wakes every waiter for good (server shutdown).
  void Shutdown();
  bool IsShutdown() const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  uint64_t version_ = 0;   // guarded by mu_
  bool shutdown_ = false;  // guarded by mu_
};

}  // namespace cairn

#endif  // CAIRN_SERVER_JOB_EVENTS_H_
