#include "media_agent/read_only_store.h"

#include "common/manifest.h"
#include "common/strings.h"

namespace cairn {

ReadOnlyStore::ReadOnlyStore(Env* env, const std::string& root)
    : chunks_(env, root), manifests_(env, root) {}

StatusOr<std::unique_ptr<ReadOnlyStore>> ReadOnlyStore::Open(
    const std::string& root, Env* env) {
  for (const char* entry : {"CAIRN-REPOSITORY", "chunks", "manifests"}) {
    CAIRN_ASSIGN_OR_RETURN(bool exists, env->FileExists(JoinPath(root, entry)));
    if (!exists) {
      return absl::NotFoundError(
          StrCat("no Cairn repository at ", root, " (", entry, " is missing)"));
    }
  }
  return std::unique_ptr<ReadOnlyStore>(new ReadOnlyStore(env, root));
}

StatusOr<Manifest> ReadOnlyStore::LoadManifest(const std::string& backup_id,
                                               const DataKey* key) const {
  CAIRN_ASSIGN_OR_RETURN(std::string path, manifests_.Path(backup_id));
  CAIRN_ASSIGN_OR_RETURN(std::string data, manifests_.Get(backup_id));
  return DecodeManifest(data, path, key);
}

StatusOr<std::string> ReadOnlyStore::GetChunk(const ChunkId& id) const {
  return chunks_.Get(id);
}

std::string ReadOnlyStore::DescribeChunk(const ChunkId& id) const {
  return StrCat("file ", chunks_.ChunkPath(id));
}

}  // namespace cairn
