// ManifestStore: committed image manifests, one file per backup:
//   manifests/<backup id>.cmf   (docs/formats/manifest.md)
// A manifest is written with WriteFileAtomically (tmp, fsync, rename,
// directory fsync); its presence is what makes a backup exist.
//
// Thread safety: thread-safe (every call is independent file I/O).
#ifndef CAIRN_MEDIA_AGENT_MANIFEST_STORE_H_
#define CAIRN_MEDIA_AGENT_MANIFEST_STORE_H_

#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace cairn {

class ManifestStore {
 public:
  // `env` is not owned. REQUIRES: `root`/manifests and `root`/tmp exist.
  ManifestStore(Env* env, std::string root);

  // InvalidArgument for a malformed id (ValidateBackupId).
  StatusOr<std::string> Path(std::string_view backup_id) const;
  // AlreadyExists if a manifest with this id is committed.
  Status Put(std::string_view backup_id, std::string_view encoded);
  // NotFound ("no backup 'x'") if absent.
  StatusOr<std::string> Get(std::string_view backup_id) const;
  StatusOr<bool> Exists(std::string_view backup_id) const;
  // Ids of every committed manifest, sorted.
  StatusOr<std::vector<std::string>> List() const;
  // Removes a manifest durably. NotFound if absent.
  Status Delete(std::string_view backup_id);

 private:
  Env* const env_;
  const std::string dir_;
  const std::string tmp_dir_;
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_MANIFEST_STORE_H_
