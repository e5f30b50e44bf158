// ReadOnlyStore: a ChunkSource over a repository directory that takes no
// lock, for readers in another process than the repository's owner (the
// nbdkit plugin started by a running media agent, which holds the lock).
//
// It only reads: it never writes, renames or removes anything, and does not
// clean temp files. Without the lock nothing stops the owner's garbage
// collection from removing a chunk while it is being exported - but GC only
// removes chunks no committed manifest names, so this can happen only if the
// exported backup is deleted meanwhile; reads of such a chunk then fail with
// NotFound. Never wrong data: chunks are content-addressed and checked.
//
// Thread safety: thread-safe.
#ifndef CAIRN_MEDIA_AGENT_READ_ONLY_STORE_H_
#define CAIRN_MEDIA_AGENT_READ_ONLY_STORE_H_

#include <memory>
#include <string>

#include "common/chunk_source.h"
#include "common/env.h"
#include "common/status.h"
#include "media_agent/chunk_store.h"
#include "media_agent/manifest_store.h"

namespace cairn {

class ReadOnlyStore final : public ChunkSource {
 public:
  // NotFound unless `root` holds a Cairn repository (its CAIRN-REPOSITORY
  // marker and chunks/ and manifests/ directories). `env` is not owned.
  static StatusOr<std::unique_ptr<ReadOnlyStore>> Open(const std::string& root,
                                                       Env* env);

  StatusOr<Manifest> LoadManifest(const std::string& backup_id,
                                  const DataKey* key) const override;
  StatusOr<std::string> GetChunk(const ChunkId& id) const override;
  std::string DescribeChunk(const ChunkId& id) const override;

 private:
  ReadOnlyStore(Env* env, const std::string& root);
  // ChunkStore::Get and ManifestStore::Get/Path are const and only read.
  const ChunkStore chunks_;
  const ManifestStore manifests_;
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_READ_ONLY_STORE_H_
