#include "media_agent/repository.h"

#include "common/strings.h"

namespace cairn {
namespace {
constexpr std::string_view kStoreMarker = "cairn repository v1\n";
}

Repository::Repository(Env* env, std::string root,
                       std::unique_ptr<FileLock> lock)
    : env_(env),
      root_(root),
      lock_(std::move(lock)),
      chunks_(env, root),
      manifests_(env, root) {}

Repository::~Repository() = default;

StatusOr<std::unique_ptr<Repository>> Repository::Open(
    const std::string& root, const RepositoryOptions& options) {
  Env* env = options.env;
  std::string marker = JoinPath(root, "CAIRN-REPOSITORY");
  CAIRN_ASSIGN_OR_RETURN(bool exists, env->FileExists(marker));
  if (!exists) {
    if (!options.create_if_missing) {
      return absl::NotFoundError(
          StrCat("no Cairn repository at ", root,
                 " (create one with 'cairn-media store init')"));
    }
    CAIRN_RETURN_IF_ERROR(env->CreateDir(root));
    // Never scatter a repository into a directory that holds other things
    // (an unfinished init leaves only the entries below).
    CAIRN_ASSIGN_OR_RETURN(auto existing, env->GetChildren(root));
    for (const auto& name : existing) {
      if (name != "chunks" && name != "manifests" && name != "tmp" &&
          name != "LOCK") {
        return absl::FailedPreconditionError(
            StrCat(root, " is not empty and not a Cairn repository (found '",
                   name, "')"));
      }
    }
    for (const char* sub : {"chunks", "manifests", "tmp"}) {
      CAIRN_RETURN_IF_ERROR(env->CreateDir(JoinPath(root, sub)));
    }
    CAIRN_RETURN_IF_ERROR(env->SyncDir(root));
    // The marker goes last: a crash before it leaves an uninitialised
    // directory that the next init completes.
    CAIRN_RETURN_IF_ERROR(WriteFileAtomically(
        env, kStoreMarker, JoinPath(root, "tmp/CAIRN-REPOSITORY.tmp"), marker));
  } else {
    std::string content;
    CAIRN_RETURN_IF_ERROR(env->ReadFileToString(marker, &content));
    if (content != kStoreMarker) {
      return absl::FailedPreconditionError(StrCat(
          marker, ": unknown repository format '", content.substr(0, 40), "'"));
    }
  }
  CAIRN_ASSIGN_OR_RETURN(auto lock, env->LockFile(JoinPath(root, "LOCK")));
  std::unique_ptr<Repository> repo(new Repository(env, root, std::move(lock)));
  CAIRN_RETURN_IF_ERROR(repo->chunks_.CleanTemp());
  return repo;
}

std::unique_ptr<BackupSession> Repository::BeginBackup() {
  std::unique_ptr<BackupSession> session(new BackupSession(this));
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.insert(session.get());
  return session;
}

void Repository::Touch(BackupSession* session, std::span<const ChunkId> ids) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& id : ids) {
    session->touched_.insert(id);
    if (gc_running_) gc_protected_.insert(id);
  }
}

void Repository::EndSession(BackupSession* session) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(session);
}

StatusOr<Manifest> Repository::LoadManifest(const std::string& backup_id,
                                            const DataKey* key) const {
  CAIRN_ASSIGN_OR_RETURN(std::string path, manifests_.Path(backup_id));
  CAIRN_ASSIGN_OR_RETURN(std::string data, manifests_.Get(backup_id));
  return DecodeManifest(data, path, key);
}

StatusOr<std::string> Repository::GetChunk(const ChunkId& id) const {
  return chunks_.Get(id);
}

std::string Repository::DescribeChunk(const ChunkId& id) const {
  return StrCat("file ", chunks_.ChunkPath(id));
}

Status Repository::DeleteBackup(const std::string& backup_id) {
  CAIRN_RETURN_IF_ERROR(manifests_.Delete(backup_id));
  // The backup's file catalogue (docs/formats/file-catalogue.md) goes with
  // it; the manifest is what makes a backup exist, so it is removed first.
  const std::string catalogue =
      StrCat(root_, "/catalogues/", backup_id, ".cfc");
  CAIRN_ASSIGN_OR_RETURN(bool has_catalogue, env_->FileExists(catalogue));
  if (has_catalogue) CAIRN_RETURN_IF_ERROR(env_->RemoveFile(catalogue));
  return absl::OkStatus();
}

Status Repository::BeginGc() {
  std::lock_guard<std::mutex> lock(mu_);
  if (gc_running_) {
    return absl::FailedPreconditionError(
        "a garbage collection is already running");
  }
  gc_running_ = true;
  gc_protected_.clear();
  for (BackupSession* s : sessions_) {
    gc_protected_.insert(s->touched_.begin(), s->touched_.end());
  }
  return absl::OkStatus();
}

void Repository::EndGc() {
  std::lock_guard<std::mutex> lock(mu_);
  gc_running_ = false;
  gc_protected_.clear();
}

Status Repository::RemoveIfUnprotected(const ChunkId& id, bool* removed) {
  std::lock_guard<std::mutex> lock(mu_);
  *removed = false;
  if (gc_protected_.contains(id)) return absl::OkStatus();
  CAIRN_RETURN_IF_ERROR(chunks_.Remove(id));
  *removed = true;
  return absl::OkStatus();
}

BackupSession::~BackupSession() { repo_->EndSession(this); }

StatusOr<std::vector<bool>> BackupSession::HasChunks(
    std::span<const ChunkId> ids) {
  // Pin first, then look: see Repository::RemoveIfUnprotected.
  repo_->Touch(this, ids);
  std::vector<bool> present(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    CAIRN_ASSIGN_OR_RETURN(bool has, repo_->chunks_.Has(ids[i]));
    present[i] = has;
  }
  return present;
}

Status BackupSession::PutChunk(const ChunkId& id, std::string_view stored) {
  repo_->Touch(this, std::span<const ChunkId>(&id, 1));
  return repo_->chunks_.Put(id, stored);
}

Status BackupSession::Commit(const std::string& backup_id,
                             std::string_view encoded_manifest) {
  if (committed_)
    return absl::FailedPreconditionError("session already committed");
  auto manifest = DecodeManifest(encoded_manifest, backup_id, nullptr);
  if (!manifest.ok()) {
    return absl::InvalidArgumentError(manifest.status().message());
  }
  if (manifest->backup_id != backup_id) {
    return absl::InvalidArgumentError(
        StrCat("manifest names backup '", manifest->backup_id,
               "', commit asked for '", backup_id, "'"));
  }
  // Every chunk the manifest names must be present. Pin them all first (a
  // pipeline has already pinned them through HasChunks/PutChunk; a client
  // that skipped that is covered here), then check.
  repo_->Touch(this, manifest->chunks);
  absl::flat_hash_set<ChunkId> seen;
  for (const ChunkId& id : manifest->chunks) {
    if (id.IsZero() || !seen.insert(id).second) continue;
    CAIRN_ASSIGN_OR_RETURN(bool has, repo_->chunks_.Has(id));
    if (!has) {
      return absl::FailedPreconditionError(
          StrCat("manifest ", backup_id, " names chunk ", id.ToHex(),
                 " which the store does not hold"));
    }
  }
  CAIRN_RETURN_IF_ERROR(repo_->chunks_.SyncPending());
  CAIRN_RETURN_IF_ERROR(repo_->manifests_.Put(backup_id, encoded_manifest));
  committed_ = true;
  return absl::OkStatus();
}

}  // namespace cairn
