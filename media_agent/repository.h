// Repository: a media agent's local store - chunks, manifests and the rules
// that keep them consistent while backups, restores, verify and garbage
// collection run at the same time.
//
// On-disk layout: docs/formats/store-layout.md. One process owns a
// repository at a time (an exclusive lock on <root>/LOCK); within that
// process every writer goes through a BackupSession, which is how garbage
// collection knows which unreferenced chunks a backup in flight is about to
// reference (see GarbageCollector).
//
// Thread safety: thread-safe. BackupSession objects may be used from several
// threads at once (they are ChunkSinks).
#ifndef CAIRN_MEDIA_AGENT_REPOSITORY_H_
#define CAIRN_MEDIA_AGENT_REPOSITORY_H_

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/chunk_sink.h"
#include "common/chunk_source.h"
#include "common/data_key.h"
#include "common/env.h"
#include "common/manifest.h"
#include "common/status.h"
#include "media_agent/chunk_store.h"
#include "media_agent/manifest_store.h"

namespace cairn {

class BackupSession;

struct RepositoryOptions {
  Env* env = Env::Default();  // not owned
  bool create_if_missing = false;
};

class Repository final : public ChunkSource {
 public:
  // Opens (or creates) the repository at `root`, takes its lock and removes
  // temp files a crash left behind. FailedPrecondition if another process
  // holds it; NotFound if absent and !create_if_missing.
  static StatusOr<std::unique_ptr<Repository>> Open(
      const std::string& root, const RepositoryOptions& options);
  ~Repository() override;

  const std::string& root() const { return root_; }
  Env* env() const { return env_; }
  ChunkStore& chunks() { return chunks_; }
  ManifestStore& manifests() { return manifests_; }

  // Starts writing one backup. The session pins every chunk it stores or
  // finds present until it is destroyed.
  std::unique_ptr<BackupSession> BeginBackup();

  // Reads and decodes a committed manifest. With `key` the signature is
  // checked too. NotFound for an unknown id; DataLoss naming the file if
  // damaged.
  StatusOr<Manifest> LoadManifest(const std::string& backup_id,
                                  const DataKey* key) const override;
  // ChunkSource: reads from the local chunk store.
  StatusOr<std::string> GetChunk(const ChunkId& id) const override;
  std::string DescribeChunk(const ChunkId& id) const override;

  // Removes a backup's manifest, then its file catalogue if it has one (its
  // chunks go at the next GC).
  Status DeleteBackup(const std::string& backup_id);

  // --- Garbage-collection coordination (used by GarbageCollector) ---
  // Starts a GC: from now until EndGc(), every chunk a session touches (and
  // every chunk open sessions touched before) is protected from the sweep.
  // FailedPrecondition if a GC is already running.
  Status BeginGc();
  void EndGc();
  // Removes `id` unless a session has touched it since BeginGc(); the check
  // and the unlink happen under one lock, so a concurrent HasChunks either
  // sees the chunk and protects it, or does not see it and re-uploads it.
  // Sets *removed accordingly.
  Status RemoveIfUnprotected(const ChunkId& id, bool* removed);

 private:
  friend class BackupSession;
  Repository(Env* env, std::string root, std::unique_ptr<FileLock> lock);
  void Touch(BackupSession* session, std::span<const ChunkId> ids);
  void EndSession(BackupSession* session);

  Env* const env_;
  const std::string root_;
  std::unique_ptr<FileLock> lock_;
  ChunkStore chunks_;
  ManifestStore manifests_;

  std::mutex mu_;
  std::set<BackupSession*> sessions_;          // guarded by mu_
  bool gc_running_ = false;                    // guarded by mu_
  absl::flat_hash_set<ChunkId> gc_protected_;  // guarded by mu_
};

// One backup being written. Implements ChunkSink for the agent's pipeline.
class BackupSession final : public ChunkSink {
 public:
  ~BackupSession() override;

  StatusOr<std::vector<bool>> HasChunks(std::span<const ChunkId> ids) override;
  Status PutChunk(const ChunkId& id, std::string_view stored) override;
  // Syncs every pending chunk rename, then decodes (to validate) and writes
  // the manifest. InvalidArgument if the manifest is malformed or its id
  // disagrees with `backup_id`; FailedPrecondition if it names a chunk the
  // store does not hold; AlreadyExists if the id is taken.
  Status Commit(const std::string& backup_id,
                std::string_view encoded_manifest) override;

 private:
  friend class Repository;
  explicit BackupSession(Repository* repo) : repo_(repo) {}
  Repository* const repo_;
  absl::flat_hash_set<ChunkId> touched_;  // guarded by repo_->mu_
  bool committed_ = false;
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_REPOSITORY_H_
