// JobExecution: how the agent carries out one backup, restore or file-restore
// job against
// a media agent, synchronously, with cooperative cancellation. JobRunner
// (agent/job_runner.h) calls these on its worker thread; they know nothing
// of gRPC or of the command stream.
//
// Backup: connects to the job's media agent, loads the parent manifest
// through the same ticket when the job names one (an incremental), derives
// the data key from the job's secret when it has one, and runs the backup
// pipeline through a CancellableChunkSink. The media agent commits the
// manifest last, so a failed or cancelled backup leaves no backup behind.
// Restore: reads the backup through an ImageReader over the media agent
// (through a CancellableChunkSource) and writes it to the target
// (agent/image_restore.h: resume, verify). A restore with `reboot` fails
// with FailedPrecondition before anything is opened or written when the
// context has no reboot command; on success its outcome carries the command
// in `run_after_report` for the runner to start (StartDetached) once the
// result is reported.
// File restore: reads files through the media agent's browse service
// (MediaConnector::ConnectFiles) and writes them with a FileRestorer
// (agent/file_restore.h), which checks the flag between entries and pieces.
//
// Thread safety: reentrant; `context` members must be thread-safe.
#ifndef CAIRN_AGENT_JOB_EXECUTION_H_
#define CAIRN_AGENT_JOB_EXECUTION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent_job.h"
#include "agent/cancellation.h"
#include "agent/media_connector.h"
#include "common/progress.h"

namespace cairn {

struct JobContext {
  const CancellationFlag* cancel = nullptr;  // required, not owned
  // Called once the job knows its total size, with the counter it advances.
  // May be empty.
  std::function<void(std::shared_ptr<const ProgressCounter>)> on_started;
  std::string source_name;  // recorded in backup manifests (the client id)
  int threads = 0;          // pipeline workers; 0: one per core
  // The agent's reboot_command (agent/agent_config.h); empty: restores with
  // `reboot` are refused.
  std::vector<std::string> reboot_command;
};

// Never fails as a call: every error becomes a JobOutcome with ok false and
// the error text (the media agent's message for its refusals). A job whose
// flag was set before it finished reports cancelled.
JobOutcome ExecuteBackupJob(const BackupJob& job, MediaConnector* connector,
                            const JobContext& context);
JobOutcome ExecuteRestoreJob(const RestoreJob& job, MediaConnector* connector,
                             const JobContext& context);
JobOutcome ExecuteFileRestoreJob(const FileRestoreJob& job,
                                 MediaConnector* connector,
                                 const JobContext& context);
JobOutcome ExecuteJob(const AgentJob& job, MediaConnector* connector,
                      const JobContext& context);

// Starts `argv` (argv[0] an absolute path) detached - in its own session,
// stdin/stdout/stderr on /dev/null, reparented to init - and returns without
// waiting for it. An error if it could not be started (exec failed).
Status StartDetached(const std::vector<std::string>& argv);

}  // namespace cairn

#endif  // CAIRN_AGENT_JOB_EXECUTION_H_
