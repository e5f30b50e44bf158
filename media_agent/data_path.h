// DataPath: the media agent's side of backups and restores over the
// network - the domain service behind the MediaService RPCs. It knows
// nothing of gRPC: handlers pass the caller's verified identity (from its
// client certificate) and the request's signed ticket.
//
// Every call is authorized the same way: the ticket's signature verifies
// against the storage manager's certificate, it has not expired, it is for
// this media agent, the caller is the ticket's client, and the operation
// matches. Then:
//  - a backup ticket opens (or reuses) one BackupSession per job; chunks go
//    into it; CommitBackup accepts only a manifest for the ticket's backup
//    id and client, whose parent is the ticket's parent; the session ends
//    at commit or expiry;
//  - a restore ticket lets the caller read the ticket's backup's manifest
//    and only the chunks that manifest references (so a client cannot probe
//    for other clients' chunks by content hash).
//
// Thread safety: thread-safe.
#ifndef CAIRN_MEDIA_AGENT_DATA_PATH_H_
#define CAIRN_MEDIA_AGENT_DATA_PATH_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/session_ticket.h"
#include "media_agent/repository.h"

namespace cairn {

class DataPath {
 public:
  using Clock = std::function<int64_t()>;  // microseconds since the epoch

  // `repo` is not owned. `server_cert_pem` verifies tickets.
  // `receipt_key_pem`: this media agent's certificate key, which signs a
  // CommitReceipt (common/commit_receipt.h) for every committed backup;
  // empty (the embedded media agent, which the server checks directly): no
  // receipts.
  DataPath(Repository* repo, std::string media_id, std::string server_cert_pem,
           Clock clock = nullptr, std::string receipt_key_pem = "");

  StatusOr<std::vector<bool>> HasChunks(const std::string& caller,
                                        const std::string& ticket,
                                        std::span<const ChunkId> ids);
  Status PutChunk(const std::string& caller, const std::string& ticket,
                  const ChunkId& id, std::string_view stored);
  // Returns the signed commit receipt (empty without a receipt key).
  StatusOr<std::string> CommitBackup(const std::string& caller,
                                     const std::string& ticket,
                                     const std::string& backup_id,
                                     std::string_view manifest);
  StatusOr<std::string> GetChunk(const std::string& caller,
                                 const std::string& ticket, const ChunkId& id);
  StatusOr<std::string> GetManifest(const std::string& caller,
                                    const std::string& ticket,
                                    const std::string& backup_id);

  // Called after every successful CommitBackup with the verified ticket
  // (the media agent's Browser records the file catalogue). Must not block.
  using CommitListener = std::function<void(const SessionTicket&)>;
  void SetCommitListener(CommitListener listener);

  // Number of open backup sessions (for tests and metrics).
  size_t OpenSessions();

  // A session unused this long is closed (its chunks are no longer pinned
  // against garbage collection): an agent that died mid-backup does not
  // hold its session until the ticket expires. A later call with a valid
  // ticket opens a fresh one.
  static constexpr int64_t kIdleSessionUs = 30LL * 60 * 1'000'000;

 private:
  struct Backup {
    std::unique_ptr<BackupSession> session;
    int64_t expires_unix_us = 0;
    int64_t last_used_us = 0;
  };
  struct Restore {
    absl::flat_hash_set<ChunkId> readable;
    int64_t expires_unix_us = 0;
    int64_t last_used_us = 0;
  };
  StatusOr<SessionTicket> Authorize(const std::string& caller,
                                    const std::string& ticket,
                                    SessionTicket::Operation op);
  StatusOr<BackupSession*> BackupFor(const SessionTicket& t);
  void DropExpiredLocked(int64_t now);

  Repository* const repo_;
  const std::string media_id_;
  const std::string server_cert_pem_;
  const Clock clock_;
  const std::string receipt_key_pem_;

  std::mutex mu_;
  std::map<uint64_t, Backup> backups_;    // by job id; guarded by mu_
  std::map<uint64_t, Restore> restores_;  // by job id; guarded by mu_
  CommitListener commit_listener_;        // guarded by mu_
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_DATA_PATH_H_
