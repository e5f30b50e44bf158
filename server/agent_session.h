// AgentSession: one connected agent's command stream as the storage
// manager's domain services see it - commands they push to the agent, and
// what the agent reports back - with no gRPC in sight. The AgentControl
// handler (server/agent_control_service.h) implements it over the Connect
// stream and converts these types to and from proto/cairn/v1/agent.proto.
//
// Thread safety: implementations are thread-safe.
#ifndef CAIRN_SERVER_AGENT_SESSION_H_
#define CAIRN_SERVER_AGENT_SESSION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace cairn {

// Everything an agent needs to reach the media agent for one job.
struct MediaAssignment {
  std::string address;   // host:port; empty: the server's own address
  std::string ticket;    // serialized SignedTicket
  std::string data_key;  // 32-byte policy secret; empty if unencrypted
};

struct BackupAssignment {
  uint64_t job_id = 0;
  std::string source_path;
  std::string backup_id;
  std::string parent_backup_id;  // empty: full
  uint32_t chunk_size = 0;
  int zstd_level = 0;
  MediaAssignment media;
};

struct RestoreAssignment {
  uint64_t job_id = 0;
  std::string backup_id;
  std::string target_path;
  MediaAssignment media;
  bool resume = false;  // RestoreCommand (agent.proto) options
  bool verify = true;
  bool reboot = false;
};

// Files of a backup restored onto the client (docs/browse.md). `media`
// carries a BROWSE ticket for the client and no data key.
struct FileRestoreAssignment {
  uint64_t job_id = 0;
  std::string backup_id;
  std::optional<uint32_t> partition;  // unset: the root file system
  std::string source_path;            // normalized, in the backup
  std::string target_path;            // absolute, on the client
  MediaAssignment media;
};

struct CancelAssignment {
  uint64_t job_id = 0;
};

// Asks the agent for its hardware profile now.
struct ProfileRequestCommand {};

using AgentCommand =
    std::variant<BackupAssignment, RestoreAssignment, CancelAssignment,
                 ProfileRequestCommand, FileRestoreAssignment>;

// An agent's progress report for a running job.
struct JobProgressReport {
  uint64_t job_id = 0;
  uint64_t done_bytes = 0;
  uint64_t total_bytes = 0;
};

// An agent's final report for a job.
struct JobOutcome {
  uint64_t job_id = 0;
  bool ok = false;
  std::string error;        // when !ok
  std::string backup_id;    // backup jobs: the backup the agent committed
  uint64_t image_size = 0;  // file-restore jobs: file bytes restored
  uint64_t new_stored_bytes = 0;
  uint64_t chunks_new = 0;
  uint64_t chunks_deduplicated = 0;
  // Backup jobs: the media agent's SignedCommitReceipt, as the agent
  // forwarded it (checked before the backup is recorded).
  std::string commit_receipt;
};

class AgentSession {
 public:
  virtual ~AgentSession() = default;
  // Queues `command` for the agent without blocking on the network. False if
  // the session has ended (the command will never be delivered).
  virtual bool Push(AgentCommand command) = 0;
  // Ends the session: the stream is cancelled and the agent must reconnect.
  // Idempotent; does not block.
  virtual void Close() = 0;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_AGENT_SESSION_H_
