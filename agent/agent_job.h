// The jobs a storage manager gives an agent, and what the agent reports
// back, as domain types (proto/cairn/v1/agent.proto carries them on the
// wire; agent/control_client.h converts).
#ifndef CAIRN_AGENT_AGENT_JOB_H_
#define CAIRN_AGENT_AGENT_JOB_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cairn {

// How to reach the media agent for one job.
struct MediaSessionSpec {
  std::string address;   // host:port; empty: the storage manager itself
                         // (cairn-server --embedded-media)
  std::string ticket;    // serialized SignedTicket (media.proto)
  std::string data_key;  // 32-byte policy secret; empty: not encrypted
};

struct BackupJob {
  uint64_t job_id = 0;
  std::string source_path;       // block device or image file
  std::string backup_id;         // the id to commit
  std::string parent_backup_id;  // empty: full backup
  uint32_t chunk_size = 0;       // 0: the default (4 MiB)
  int zstd_level = 0;            // 0: the default (1)
  MediaSessionSpec media;
};

struct RestoreJob {
  uint64_t job_id = 0;
  std::string backup_id;
  std::string target_path;  // file or block device
  MediaSessionSpec media;
  // agent/image_restore.h: write only chunks not already in place; re-read
  // and check the target after writing; after success is reported, run the
  // agent's configured reboot_command (refused if it has none).
  bool resume = false;
  bool verify = true;
  bool reboot = false;
};

// Files of a backup restored onto this machine (agent/file_restore.h).
// `media.ticket` is a BROWSE ticket for this agent; `media.data_key` is
// empty (the media agent decrypts).
struct FileRestoreJob {
  uint64_t job_id = 0;
  std::string backup_id;
  std::optional<uint32_t> partition;  // unset: the root file system
  std::string source_path;            // in the backup
  std::string target_path;            // absolute, on this machine
  MediaSessionSpec media;
};

using AgentJob = std::variant<BackupJob, RestoreJob, FileRestoreJob>;

inline uint64_t JobIdOf(const AgentJob& job) {
  return std::visit([](const auto& j) { return j.job_id; }, job);
}

struct JobProgressUpdate {
  uint64_t job_id = 0;
  uint64_t done_bytes = 0;
  uint64_t total_bytes = 0;
};

// The final report of one job. `ok` false: `error` says what failed
// (cancelled jobs say so: `cancelled` is true and `error` "job cancelled").
struct JobOutcome {
  uint64_t job_id = 0;
  bool ok = false;
  bool cancelled = false;
  std::string error;
  std::string backup_id;    // backup jobs: the committed backup
  uint64_t image_size = 0;  // file-restore jobs: file bytes restored
  uint64_t new_stored_bytes = 0;
  uint64_t chunks_new = 0;
  uint64_t chunks_deduplicated = 0;
  std::string commit_receipt;  // backup jobs: from the media agent
  // Restore jobs reuse the counters: chunks_new = chunks written,
  // chunks_deduplicated = chunks already in place (resume), new_stored_bytes
  // = bytes written.
  // Restore jobs with `reboot`: the argv to start (detached) once this
  // outcome has been handed to the reporter; empty: nothing to run.
  std::vector<std::string> run_after_report;
};

}  // namespace cairn

#endif  // CAIRN_AGENT_AGENT_JOB_H_
