#include "cli/job_watch.h"

#include <chrono>
#include <iostream>
#include <thread>

#include "cli/ctl_output.h"
#include "common/cli.h"
#include "common/progress.h"
#include "common/strings.h"

namespace cairn::ctl {

int WatchJobToEnd(AdminClient* client, uint64_t job_id, bool json) {
  constexpr int kAttempts = 4;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  v1::JobInfo last;
  bool have = false;
  bool printed = false;
  std::unique_ptr<ProgressPrinter> printer;
  std::string phase;
  Status status;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    status = client->WatchJob(job_id, [&](const v1::JobInfo& info) {
      last = info;
      have = true;
      if (!json && info.state() == "running" && !info.phase().empty() &&
          info.phase() != phase) {
        phase = info.phase();
        if (printer == nullptr) {
          std::cerr << info.kind() << " job " << info.job_id() << ": " << phase
                    << std::endl;
        }
      }
      if (json || info.state() != "running" || info.total_bytes() == 0) return;
      if (printer == nullptr) {
        printer = std::make_unique<ProgressPrinter>(
            StrCat(info.kind(), " job ", info.job_id()));
      }
      printer->Update(JobProgressSnapshot(info, elapsed()));
      printed = true;
    });
    if (have && IsTerminalJobState(last.state())) break;
    // Only a lost connection is worth another try.
    if (!status.ok() && status.code() != absl::StatusCode::kUnavailable) {
      return ReportCtlError(status, json);
    }
  }
  if (!have || !IsTerminalJobState(last.state())) {
    if (status.ok()) {
      status = absl::UnavailableError(
          StrCat("the server ended the watch of job ", job_id,
                 " before the job ended; follow it with `cairnctl jobs watch ",
                 job_id, "`"));
    }
    return ReportCtlError(status, json);
  }
  if (printer != nullptr && printed && last.state() == "succeeded") {
    ProgressSnapshot done = JobProgressSnapshot(last, elapsed());
    done.done_bytes = done.total_bytes;  // the last report may predate the end
    done.eta_seconds = 0;
    printer->Finish(done);
  }
  if (json) {
    cli::PrintJson(JobToJson(last));
  } else {
    std::cout << FormatJobOutcome(last) << std::endl;
  }
  return ExitCodeForJob(last);
}

}  // namespace cairn::ctl
