// JobRunner: runs the jobs the storage manager sends, one at a time, on a
// worker thread of its own, so the command stream (heartbeats, cancels)
// stays responsive while a backup or restore runs. Jobs wait in a FIFO
// queue behind the running one. Knows nothing of gRPC: results and progress
// go to a JobReporter (agent/control_client.h implements it over the stream;
// tests collect them).
//
// Reporting contract:
//   - every submitted job gets exactly one ReportResult, also when it is
//     cancelled while queued or when the runner stops;
//   - while a job runs, ReportProgress every `progress_interval`;
//   - no ReportProgress for a job after its ReportResult;
//   - reporter calls come from the runner's threads (or from the thread that
//     calls Cancel/CancelAll/Stop, for queued jobs), one at a time, and must
//     not call back into the JobRunner.
//
// Thread safety: every method is thread-safe.
#ifndef CAIRN_AGENT_JOB_RUNNER_H_
#define CAIRN_AGENT_JOB_RUNNER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent_job.h"
#include "agent/cancellation.h"
#include "agent/media_connector.h"
#include "common/progress.h"

namespace cairn {

class JobReporter {
 public:
  virtual ~JobReporter() = default;
  // Best effort: a reporter may drop progress it cannot deliver.
  virtual void ReportProgress(const JobProgressUpdate& update) = 0;
  // Must eventually deliver (or keep) the result.
  virtual void ReportResult(const JobOutcome& outcome) = 0;
};

struct JobRunnerOptions {
  std::string source_name;  // recorded in backup manifests (the client id)
  int threads = 0;          // pipeline workers per job; 0: one per core
  std::chrono::milliseconds progress_interval{1000};
  // The agent's reboot_command; a restore job with `reboot` needs it. The
  // runner starts it (detached) after the job's ok result was reported.
  std::vector<std::string> reboot_command;
};

class JobRunner {
 public:
  // `connector` and `reporter` are not owned and must outlive the runner.
  // Starts the worker and progress threads.
  JobRunner(MediaConnector* connector, JobReporter* reporter,
            JobRunnerOptions options);
  // Stop().
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Queues `job`. False (and nothing happens) if a job with the same id is
  // queued or running, or after StopAccepting() or Stop().
  bool Submit(AgentJob job);
  // Cancels a job: a queued one is dropped and reported cancelled at once; a
  // running one is told to stop and reports cancelled when it has (its
  // result may still be ok if it finished first). False for an unknown id.
  bool Cancel(uint64_t job_id);
  // Cancels every queued and running job.
  void CancelAll();
  // The start of a graceful stop: from now on Submit refuses every job, and
  // every queued and running job is cancelled (CancelAll), atomically, so no
  // job submitted concurrently can start after the cancel. Does not block;
  // follow with WaitIdle (a grace period) and Stop. Idempotent.
  void StopAccepting();
  // Ids of the running job (first) and the queued ones.
  std::vector<uint64_t> ActiveJobIds() const;
  // Blocks until nothing is running or queued, or `timeout` passes; returns
  // whether the runner is idle.
  bool WaitIdle(std::chrono::milliseconds timeout);
  // Cancels everything, waits for the running job to end, and joins the
  // threads. Idempotent.
  void Stop();

 private:
  struct Entry {
    AgentJob job;
    std::shared_ptr<CancellationFlag> cancel;
  };
  // Cancels the queued and running jobs; `refuse` also makes Submit refuse
  // from now on, `stop` also makes the worker and progress threads exit.
  void CancelEverything(bool refuse, bool stop);
  void WorkerLoop();
  void ProgressLoop();
  static JobOutcome CancelledOutcome(uint64_t job_id);

  MediaConnector* const connector_;
  JobReporter* const reporter_;
  const JobRunnerOptions options_;

  // Serializes reporter calls. Lock order: report_mu_, then mu_.
  std::mutex report_mu_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // queue, idle and stop changes
  std::condition_variable tick_cv_;  // wakes the progress loop on stop
  std::deque<Entry> queue_;          // guarded by mu_
  bool running_ = false;             // guarded by mu_
  uint64_t running_id_ = 0;          // guarded by mu_
  std::shared_ptr<CancellationFlag> running_cancel_;         // guarded by mu_
  std::shared_ptr<const ProgressCounter> running_progress_;  // guarded by mu_
  bool accepting_ = true;                                    // guarded by mu_
  bool stopping_ = false;                                    // guarded by mu_
  std::thread worker_;
  std::thread ticker_;
};

}  // namespace cairn

#endif  // CAIRN_AGENT_JOB_RUNNER_H_
