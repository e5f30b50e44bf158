#include "agent/job_execution.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>

#include "agent/backup_pipeline.h"
#include "agent/file_restore.h"
#include "agent/image_restore.h"
#include "common/env.h"
#include "common/image_reader.h"
#include "common/strings.h"
#include "common/utf8.h"

namespace cairn {
namespace {

StatusOr<std::optional<DataKey>> KeyFor(const MediaSessionSpec& media) {
  if (media.data_key.empty()) return std::optional<DataKey>();
  auto key = DataKey::FromSecret(media.data_key);
  if (!key.ok()) {
    return absl::InvalidArgumentError(StrCat("the job's data key is unusable: ",
                                             ToStd(key.status().message())));
  }
  return std::optional<DataKey>(*std::move(key));
}

JobOutcome Failed(uint64_t job_id, const Status& status,
                  const CancellationFlag* cancel) {
  JobOutcome out;
  out.job_id = job_id;
  out.ok = false;
  if (cancel->cancelled()) {
    out.cancelled = true;
    out.error = std::string(ToStd(JobCancelledStatus().message()));
  } else {
    out.error = PrintableUtf8(ToStd(status.message()));
    if (out.error.empty()) out.error = PrintableUtf8(status.ToString());
  }
  return out;
}

struct BackupDone {
  BackupResult result;
  std::string commit_receipt;
};

StatusOr<BackupDone> DoBackup(const BackupJob& job, MediaConnector* connector,
                              const JobContext& context) {
  if (job.source_path.empty()) {
    return absl::InvalidArgumentError("the backup job names no source path");
  }
  if (job.backup_id.empty()) {
    return absl::InvalidArgumentError("the backup job names no backup id");
  }
  CAIRN_ASSIGN_OR_RETURN(std::optional<DataKey> key, KeyFor(job.media));
  const DataKey* key_ptr = key ? &*key : nullptr;
  CAIRN_ASSIGN_OR_RETURN(auto link, connector->Connect(job.media));
  CancellableChunkSink sink(link->sink(), context.cancel);
  CancellableChunkSource source(link->source(), context.cancel);

  BackupRequest req;
  Manifest parent;
  if (!job.parent_backup_id.empty()) {
    // With the key, the parent's signature is checked before it is trusted.
    CAIRN_ASSIGN_OR_RETURN(parent,
                           source.LoadManifest(job.parent_backup_id, key_ptr));
    req.parent = &parent;
  }
  CAIRN_ASSIGN_OR_RETURN(auto file,
                         Env::Default()->NewRandomAccessFile(job.source_path));
  CAIRN_ASSIGN_OR_RETURN(uint64_t size, file->Size());
  file.reset();
  auto progress = std::make_shared<ProgressCounter>(size);
  if (context.on_started) context.on_started(progress);

  req.source_path = job.source_path;
  req.source_name =
      context.source_name.empty() ? job.source_path : context.source_name;
  req.backup_id = job.backup_id;
  req.chunk_size = job.chunk_size != 0 ? job.chunk_size : kDefaultChunkSize;
  req.zstd_level = job.zstd_level != 0 ? job.zstd_level : 1;
  req.key = key_ptr;
  req.threads = context.threads;
  req.progress = progress.get();
  CAIRN_ASSIGN_OR_RETURN(BackupResult result, RunBackup(req, &sink));
  return BackupDone{std::move(result), link->commit_receipt()};
}

StatusOr<RestoreStats> DoRestore(const RestoreJob& job,
                                 MediaConnector* connector,
                                 const JobContext& context) {
  // Before anything is opened or written.
  if (job.reboot && context.reboot_command.empty()) {
    return absl::FailedPreconditionError(
        "reboot requested but this agent has no reboot_command configured");
  }
  if (job.target_path.empty()) {
    return absl::InvalidArgumentError("the restore job names no target path");
  }
  if (job.backup_id.empty()) {
    return absl::InvalidArgumentError("the restore job names no backup id");
  }
  CAIRN_ASSIGN_OR_RETURN(std::optional<DataKey> key, KeyFor(job.media));
  CAIRN_ASSIGN_OR_RETURN(auto link, connector->Connect(job.media));
  CancellableChunkSource source(link->source(), context.cancel);
  CAIRN_ASSIGN_OR_RETURN(auto reader, ImageReader::Open(&source, job.backup_id,
                                                        key ? &*key : nullptr));
  // Progress covers the write phase, then the verify phase.
  auto progress = std::make_shared<ProgressCounter>(
      job.verify ? 2 * reader->size() : reader->size());
  if (context.on_started) context.on_started(progress);
  RestoreOptions options;
  options.threads = context.threads;
  options.progress = progress.get();
  options.key = key ? &*key : nullptr;
  options.resume = job.resume;
  options.verify = job.verify;
  return RestoreImage(reader.get(), job.target_path, options);
}

StatusOr<FileRestoreStats> DoFileRestore(const FileRestoreJob& job,
                                         MediaConnector* connector,
                                         const JobContext& context) {
  if (job.backup_id.empty()) {
    return absl::InvalidArgumentError(
        "the file-restore job names no backup id");
  }
  if (job.source_path.empty() || job.target_path.empty()) {
    return absl::InvalidArgumentError(
        "the file-restore job needs a source path and a target path");
  }
  CAIRN_ASSIGN_OR_RETURN(auto source,
                         connector->ConnectFiles(job.media, job.partition));
  FileRestoreOptions options;
  options.cancel = context.cancel;
  options.on_started = context.on_started;
  FileRestorer restorer(source.get(), std::move(options));
  return restorer.Restore(job.source_path, job.target_path);
}

}  // namespace

JobOutcome ExecuteBackupJob(const BackupJob& job, MediaConnector* connector,
                            const JobContext& context) {
  auto result = DoBackup(job, connector, context);
  if (!result.ok()) return Failed(job.job_id, result.status(), context.cancel);
  JobOutcome out;
  out.job_id = job.job_id;
  out.ok = true;
  const BackupStats& stats = result->result.stats;
  out.backup_id = result->result.manifest.backup_id;
  out.image_size = stats.image_size;
  out.new_stored_bytes = stats.new_stored_bytes;
  out.chunks_new = stats.chunks_new;
  out.chunks_deduplicated = stats.chunks_present;
  out.commit_receipt = std::move(result->commit_receipt);
  return out;
}

JobOutcome ExecuteRestoreJob(const RestoreJob& job, MediaConnector* connector,
                             const JobContext& context) {
  auto result = DoRestore(job, connector, context);
  if (!result.ok()) return Failed(job.job_id, result.status(), context.cancel);
  const RestoreStats& stats = *result;
  spdlog::info(
      "job {}: restored {} to {}: {} chunks written ({} bytes), {} already "
      "in place ({} bytes), {}",
      job.job_id, job.backup_id, job.target_path, stats.chunks_written,
      stats.bytes_written, stats.chunks_skipped, stats.bytes_skipped,
      stats.verified ? "verified by re-reading" : "not verified");
  JobOutcome out;
  out.job_id = job.job_id;
  out.ok = true;
  out.backup_id = job.backup_id;
  out.image_size = stats.image_size;
  out.chunks_new = stats.chunks_written;
  out.chunks_deduplicated = stats.chunks_skipped;
  out.new_stored_bytes = stats.bytes_written;
  if (job.reboot) out.run_after_report = context.reboot_command;
  return out;
}

JobOutcome ExecuteFileRestoreJob(const FileRestoreJob& job,
                                 MediaConnector* connector,
                                 const JobContext& context) {
  auto result = DoFileRestore(job, connector, context);
  if (!result.ok()) return Failed(job.job_id, result.status(), context.cancel);
  JobOutcome out;
  out.job_id = job.job_id;
  out.ok = true;
  out.backup_id = job.backup_id;
  out.image_size = result->bytes;
  return out;
}

JobOutcome ExecuteJob(const AgentJob& job, MediaConnector* connector,
                      const JobContext& context) {
  if (const auto* b = std::get_if<BackupJob>(&job)) {
    return ExecuteBackupJob(*b, connector, context);
  }
  if (const auto* f = std::get_if<FileRestoreJob>(&job)) {
    return ExecuteFileRestoreJob(*f, connector, context);
  }
  return ExecuteRestoreJob(std::get<RestoreJob>(job), connector, context);
}

Status StartDetached(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') {
    return absl::InvalidArgumentError(
        "the command to start needs an absolute program path");
  }
  // Everything the children use is prepared before fork: between fork and
  // exec only async-signal-safe calls are allowed (this process has
  // threads).
  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) return ErrnoToStatus(errno, "open", "/dev/null");
  int pipefd[2];  // reports an exec failure; closed by a successful exec
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(devnull);
    return ErrnoToStatus(err, "pipe", argv[0]);
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    // Intermediate child: a new session, then the grandchild runs the
    // command and is reparented to init when we exit.
    ::setsid();
    pid_t grandchild = ::fork();
    if (grandchild != 0) ::_exit(grandchild < 0 ? 1 : 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::close(pipefd[0]);
    ::execve(args[0], args.data(), environ);
    int err = errno;
    ssize_t ignored = ::write(pipefd[1], &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }
  int fork_errno = errno;
  ::close(pipefd[1]);
  ::close(devnull);
  if (pid < 0) {
    ::close(pipefd[0]);
    return ErrnoToStatus(fork_errno, "fork", argv[0]);
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(pipefd[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  ::close(pipefd[0]);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return absl::InternalError(StrCat("could not fork to start ", argv[0]));
  }
  if (n == static_cast<ssize_t>(sizeof(exec_errno))) {
    return ErrnoToStatus(exec_errno, "exec", argv[0]);
  }
  return absl::OkStatus();
}

}  // namespace cairn
