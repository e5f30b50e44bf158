#include "agent/job_runner.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_join.h"
#include "agent/job_execution.h"
#include "common/strings.h"

namespace cairn {

JobRunner::JobRunner(MediaConnector* connector, JobReporter* reporter,
                     JobRunnerOptions options)
    : connector_(connector), reporter_(reporter), options_(std::move(options)) {
  worker_ = std::thread([this] { WorkerLoop(); });
  ticker_ = std::thread([this] { ProgressLoop(); });
}

JobRunner::~JobRunner() { Stop(); }

JobOutcome JobRunner::CancelledOutcome(uint64_t job_id) {
  JobOutcome out;
  out.job_id = job_id;
  out.ok = false;
  out.cancelled = true;
  out.error = std::string(JobCancelledStatus().message());
  return out;
}

bool JobRunner::Submit(AgentJob job) {
  const uint64_t id = JobIdOf(job);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!accepting_ || stopping_) return false;
    if (running_ && running_id_ == id) return false;
    for (const Entry& e : queue_) {
      if (JobIdOf(e.job) == id) return false;
    }
    queue_.push_back({std::move(job), std::make_shared<CancellationFlag>()});
  }
  cv_.notify_all();
  return true;
}

bool JobRunner::Cancel(uint64_t job_id) {
  bool dropped = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_ && running_id_ == job_id) {
      running_cancel_->Cancel();
      return true;
    }
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (JobIdOf(it->job) == job_id) {
        queue_.erase(it);
        dropped = true;
        break;
      }
    }
  }
  if (!dropped) return false;
  {
    std::lock_guard<std::mutex> report(report_mu_);
    reporter_->ReportResult(CancelledOutcome(job_id));
  }
  cv_.notify_all();
  return true;
}

void JobRunner::CancelAll() {
  CancelEverything(/*refuse=*/false, /*stop=*/false);
}

void JobRunner::StopAccepting() {
  CancelEverything(/*refuse=*/true, /*stop=*/false);
}

void JobRunner::CancelEverything(bool refuse, bool stop) {
  std::deque<Entry> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (refuse || stop) accepting_ = false;
    if (stop) stopping_ = true;
    if (running_) running_cancel_->Cancel();
    dropped.swap(queue_);
  }
  if (!dropped.empty()) {
    std::lock_guard<std::mutex> report(report_mu_);
    for (const Entry& e : dropped) {
      reporter_->ReportResult(CancelledOutcome(JobIdOf(e.job)));
    }
  }
  cv_.notify_all();
}

std::vector<uint64_t> JobRunner::ActiveJobIds() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> ids;
  if (running_) ids.push_back(running_id_);
  for (const Entry& e : queue_) ids.push_back(JobIdOf(e.job));
  return ids;
}

bool JobRunner::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout,
                      [&] { return !running_ && queue_.empty(); });
}

void JobRunner::Stop() {
  CancelEverything(/*refuse=*/true, /*stop=*/true);
  tick_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (ticker_.joinable()) ticker_.join();
}

void JobRunner::WorkerLoop() {
  for (;;) {
    Entry entry;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      entry = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
      running_id_ = JobIdOf(entry.job);
      running_cancel_ = entry.cancel;
      running_progress_.reset();
    }
    JobContext context;
    context.cancel = entry.cancel.get();
    context.source_name = options_.source_name;
    context.threads = options_.threads;
    context.reboot_command = options_.reboot_command;
    context.on_started = [this](std::shared_ptr<const ProgressCounter> c) {
      std::lock_guard<std::mutex> lock(mu_);
      running_progress_ = std::move(c);
    };
    JobOutcome outcome = ExecuteJob(entry.job, connector_, context);
    {
      std::lock_guard<std::mutex> report(report_mu_);
      {
        std::lock_guard<std::mutex> lock(mu_);
        running_ = false;
        running_cancel_.reset();
        running_progress_.reset();
      }
      reporter_->ReportResult(outcome);
    }
    cv_.notify_all();
    if (outcome.ok && !outcome.run_after_report.empty()) {
      // A reboot: the result is on its way to the server first.
      spdlog::warn("job {}: rebooting: starting {}", outcome.job_id,
                   absl::StrJoin(outcome.run_after_report, " "));
      if (Status s = StartDetached(outcome.run_after_report); !s.ok()) {
        spdlog::error("job {}: the reboot command failed to start: {}",
                      outcome.job_id, ToStd(s.message()));
      }
    }
  }
}

void JobRunner::ProgressLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    tick_cv_.wait_for(lock, options_.progress_interval,
                      [&] { return stopping_; });
    if (stopping_) return;
    if (!running_ || running_progress_ == nullptr) continue;
    const uint64_t id = running_id_;
    lock.unlock();
    {
      std::lock_guard<std::mutex> report(report_mu_);
      JobProgressUpdate update;
      bool still_running = false;
      {
        std::lock_guard<std::mutex> inner(mu_);
        if (running_ && running_id_ == id && running_progress_ != nullptr) {
          ProgressSnapshot s = running_progress_->Snapshot();
          update = {id, s.done_bytes, s.total_bytes};
          still_running = true;
        }
      }
      if (still_running) reporter_->ReportProgress(update);
    }
    lock.lock();
  }
}

}  // namespace cairn
