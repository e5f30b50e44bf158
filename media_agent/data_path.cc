#include "media_agent/data_path.h"

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/commit_receipt.h"
#include "common/strings.h"

namespace cairn {

DataPath::DataPath(Repository* repo, std::string media_id,
                   std::string server_cert_pem, Clock clock,
                   std::string receipt_key_pem)
    : repo_(repo),
      media_id_(std::move(media_id)),
      server_cert_pem_(std::move(server_cert_pem)),
      clock_(clock ? std::move(clock)
                   : [] { return absl::ToUnixMicros(absl::Now()); }),
      receipt_key_pem_(std::move(receipt_key_pem)) {}

StatusOr<SessionTicket> DataPath::Authorize(const std::string& caller,
                                            const std::string& ticket,
                                            SessionTicket::Operation op) {
  return AuthorizeTicket(ticket, server_cert_pem_, clock_(), media_id_, caller,
                         op);
}

void DataPath::SetCommitListener(CommitListener listener) {
  std::lock_guard<std::mutex> lock(mu_);
  commit_listener_ = std::move(listener);
}

void DataPath::DropExpiredLocked(int64_t now) {
  const int64_t idle_before = now - kIdleSessionUs;
  std::erase_if(backups_, [&](const auto& kv) {
    return kv.second.expires_unix_us <= now ||
           kv.second.last_used_us < idle_before;
  });
  std::erase_if(restores_, [&](const auto& kv) {
    return kv.second.expires_unix_us <= now ||
           kv.second.last_used_us < idle_before;
  });
}

StatusOr<BackupSession*> DataPath::BackupFor(const SessionTicket& t) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_();
  DropExpiredLocked(now);
  Backup& b = backups_[t.job_id];
  if (!b.session) {
    b.session = repo_->BeginBackup();
    b.expires_unix_us = t.expires_unix_us;
  }
  b.last_used_us = now;
  return b.session.get();
}

size_t DataPath::OpenSessions() {
  std::lock_guard<std::mutex> lock(mu_);
  return backups_.size();
}

StatusOr<std::vector<bool>> DataPath::HasChunks(const std::string& caller,
                                                const std::string& ticket,
                                                std::span<const ChunkId> ids) {
  CAIRN_ASSIGN_OR_RETURN(
      SessionTicket t,
      Authorize(caller, ticket, SessionTicket::Operation::kBackup));
  CAIRN_ASSIGN_OR_RETURN(BackupSession * session, BackupFor(t));
  return session->HasChunks(ids);
}

Status DataPath::PutChunk(const std::string& caller, const std::string& ticket,
                          const ChunkId& id, std::string_view stored) {
  CAIRN_ASSIGN_OR_RETURN(
      SessionTicket t,
      Authorize(caller, ticket, SessionTicket::Operation::kBackup));
  CAIRN_ASSIGN_OR_RETURN(BackupSession * session, BackupFor(t));
  return session->PutChunk(id, stored);
}

StatusOr<std::string> DataPath::CommitBackup(const std::string& caller,
                                             const std::string& ticket,
                                             const std::string& backup_id,
                                             std::string_view encoded) {
  CAIRN_ASSIGN_OR_RETURN(
      SessionTicket t,
      Authorize(caller, ticket, SessionTicket::Operation::kBackup));
  if (backup_id != t.backup_id) {
    return absl::PermissionDeniedError(
        StrCat("ticket allows committing backup '", t.backup_id, "', not '",
               backup_id, "'"));
  }
  auto m = DecodeManifest(encoded, backup_id, nullptr);
  if (!m.ok()) return absl::InvalidArgumentError(m.status().message());
  if (m->source != t.client_id || m->parent_id != t.parent_backup_id) {
    return absl::PermissionDeniedError(
        StrCat("manifest names source '", m->source, "' and parent '",
               m->parent_id, "'; the ticket allows '", t.client_id, "' and '",
               t.parent_backup_id, "'"));
  }
  CAIRN_ASSIGN_OR_RETURN(BackupSession * session, BackupFor(t));
  CAIRN_RETURN_IF_ERROR(session->Commit(backup_id, encoded));
  CommitListener listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    backups_.erase(t.job_id);
    listener = commit_listener_;
  }
  if (listener) listener(t);
  if (receipt_key_pem_.empty()) return std::string();
  CommitReceipt receipt;
  receipt.media_id = media_id_;
  receipt.client_id = t.client_id;
  receipt.job_id = t.job_id;
  receipt.backup_id = backup_id;
  receipt.manifest_sha256 = ManifestDigest(encoded);
  receipt.image_size = m->image_size;
  receipt.committed_unix_us = clock_();
  return SignCommitReceipt(receipt, receipt_key_pem_);
}

StatusOr<std::string> DataPath::GetManifest(const std::string& caller,
                                            const std::string& ticket,
                                            const std::string& backup_id) {
  // A backup ticket may read its parent (for an incremental); a restore
  // ticket its backup.
  auto verified = VerifyTicket(ticket, server_cert_pem_, clock_());
  if (!verified.ok()) return verified.status();
  SessionTicket::Operation op = verified->operation;
  CAIRN_ASSIGN_OR_RETURN(SessionTicket t, Authorize(caller, ticket, op));
  const std::string& allowed = op == SessionTicket::Operation::kBackup
                                   ? t.parent_backup_id
                                   : t.backup_id;
  if (allowed.empty() || backup_id != allowed) {
    return absl::PermissionDeniedError(
        StrCat("ticket does not allow reading backup '", backup_id, "'"));
  }
  return repo_->manifests().Get(backup_id);
}

StatusOr<std::string> DataPath::GetChunk(const std::string& caller,
                                         const std::string& ticket,
                                         const ChunkId& id) {
  CAIRN_ASSIGN_OR_RETURN(
      SessionTicket t,
      Authorize(caller, ticket, SessionTicket::Operation::kRestore));
  bool allowed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = clock_();
    DropExpiredLocked(now);
    auto it = restores_.find(t.job_id);
    if (it != restores_.end()) {
      allowed = it->second.readable.contains(id);
      it->second.last_used_us = now;
    }
  }
  if (!allowed) {
    // First read of this job (or a chunk outside its backup): load the
    // backup's chunk list once, then decide.
    CAIRN_ASSIGN_OR_RETURN(Manifest m,
                           repo_->LoadManifest(t.backup_id, nullptr));
    Restore r;
    r.expires_unix_us = t.expires_unix_us;
    r.last_used_us = clock_();
    for (const ChunkId& c : m.chunks) {
      if (!c.IsZero()) r.readable.insert(c);
    }
    allowed = r.readable.contains(id);
    std::lock_guard<std::mutex> lock(mu_);
    restores_[t.job_id] = std::move(r);
  }
  if (!allowed) {
    return absl::PermissionDeniedError(StrCat(
        "chunk ", id.ToHex(), " is not part of backup '", t.backup_id, "'"));
  }
  return repo_->GetChunk(id);
}

}  // namespace cairn
