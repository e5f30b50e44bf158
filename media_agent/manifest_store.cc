#include "media_agent/manifest_store.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/match.h"
#include "common/manifest.h"
#include "common/strings.h"

namespace cairn {
namespace {
constexpr absl::string_view kSuffix = ".cmf";
}

ManifestStore::ManifestStore(Env* env, std::string root)
    : env_(env),
      dir_(JoinPath(root, "manifests")),
      tmp_dir_(JoinPath(root, "tmp")) {}

StatusOr<std::string> ManifestStore::Path(std::string_view backup_id) const {
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(backup_id));
  return StrCat(dir_, "/", backup_id, kSuffix);
}

Status ManifestStore::Put(std::string_view backup_id,
                          std::string_view encoded) {
  CAIRN_ASSIGN_OR_RETURN(std::string path, Path(backup_id));
  CAIRN_ASSIGN_OR_RETURN(bool exists, env_->FileExists(path));
  if (exists) {
    return absl::AlreadyExistsError(
        StrCat("backup '", backup_id, "' already exists"));
  }
  static std::atomic<uint64_t> counter{0};
  std::string tmp = StrCat(tmp_dir_, "/manifest.", backup_id, ".", getpid(),
                           ".", counter.fetch_add(1), ".tmp");
  return WriteFileAtomically(env_, encoded, tmp, path);
}

StatusOr<std::string> ManifestStore::Get(std::string_view backup_id) const {
  CAIRN_ASSIGN_OR_RETURN(std::string path, Path(backup_id));
  std::string data;
  Status s = env_->ReadFileToString(path, &data);
  if (absl::IsNotFound(s)) {
    return absl::NotFoundError(StrCat("no backup '", backup_id, "'"));
  }
  CAIRN_RETURN_IF_ERROR(s);
  return data;
}

StatusOr<bool> ManifestStore::Exists(std::string_view backup_id) const {
  CAIRN_ASSIGN_OR_RETURN(std::string path, Path(backup_id));
  return env_->FileExists(path);
}

StatusOr<std::vector<std::string>> ManifestStore::List() const {
  CAIRN_ASSIGN_OR_RETURN(auto names, env_->GetChildren(dir_));
  std::vector<std::string> ids;
  for (const auto& name : names) {
    if (!absl::EndsWith(name, kSuffix)) continue;
    std::string id = name.substr(0, name.size() - kSuffix.size());
    if (ValidateBackupId(id).ok()) ids.push_back(std::move(id));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

Status ManifestStore::Delete(std::string_view backup_id) {
  CAIRN_ASSIGN_OR_RETURN(std::string path, Path(backup_id));
  Status s = env_->RemoveFile(path);
  if (absl::IsNotFound(s)) {
    return absl::NotFoundError(StrCat("no backup '", backup_id, "'"));
  }
  CAIRN_RETURN_IF_ERROR(s);
  return env_->SyncDir(dir_);
}

}  // namespace cairn
