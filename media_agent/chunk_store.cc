#include "media_agent/chunk_store.h"

#include <unistd.h>

#include "absl/strings/match.h"
#include "common/chunk_format.h"
#include "common/coding.h"
#include "common/strings.h"

namespace cairn {
namespace {
size_t FanoutIndex(const ChunkId& id) {
  return (static_cast<size_t>(id.bytes[0]) << 8) | id.bytes[1];
}
}  // namespace

ChunkStore::ChunkStore(Env* env, std::string root)
    : env_(env),
      root_(std::move(root)),
      chunks_dir_(JoinPath(root_, "chunks")),
      tmp_dir_(JoinPath(root_, "tmp")),
      fanout_exists_(65536, false) {}

std::string ChunkStore::FanoutDir(const ChunkId& id) const {
  return JoinPath(chunks_dir_, id.ToHex().substr(0, 4));
}

std::string ChunkStore::ChunkPath(const ChunkId& id) const {
  std::string hex = id.ToHex();
  return StrCat(chunks_dir_, "/", hex.substr(0, 4), "/", hex);
}

std::string ChunkStore::TempPath(std::string_view stem) {
  uint64_t n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    n = ++temp_counter_;
  }
  return StrCat(tmp_dir_, "/", stem, ".", getpid(), ".", n, ".tmp");
}

StatusOr<bool> ChunkStore::Has(const ChunkId& id) const {
  return env_->FileExists(ChunkPath(id));
}

Status ChunkStore::Put(const ChunkId& id, std::string_view stored) {
  if (id.IsZero()) {
    return absl::InvalidArgumentError(
        "the all-zero id is reserved; zero chunks are never stored");
  }
  auto header = CheckStoredChunk(stored);
  if (!header.ok()) {
    return absl::InvalidArgumentError(StrCat("refusing to store chunk ",
                                             id.ToHex(), ": ",
                                             header.status().message()));
  }
  std::string path = ChunkPath(id);
  CAIRN_ASSIGN_OR_RETURN(bool exists, env_->FileExists(path));
  if (exists) return absl::OkStatus();

  std::string dir = FanoutDir(id);
  size_t fanout = FanoutIndex(id);
  bool need_mkdir;
  {
    std::lock_guard<std::mutex> lock(mu_);
    need_mkdir = !fanout_exists_[fanout];
  }
  if (need_mkdir) {
    CAIRN_RETURN_IF_ERROR(env_->CreateDir(dir));
    std::lock_guard<std::mutex> lock(mu_);
    fanout_exists_[fanout] = true;
    pending_sync_dirs_.insert(chunks_dir_);
  }

  // The directory sync is deferred to SyncPending() (see the header).
  CAIRN_RETURN_IF_ERROR(WriteFileAtomically(env_, stored, TempPath(id.ToHex()),
                                            path,
                                            /*sync_dir=*/false));
  std::lock_guard<std::mutex> lock(mu_);
  pending_sync_dirs_.insert(dir);
  return absl::OkStatus();
}

StatusOr<std::string> ChunkStore::Get(const ChunkId& id) const {
  std::string path = ChunkPath(id);
  std::string stored;
  Status s = env_->ReadFileToString(path, &stored);
  if (absl::IsNotFound(s)) {
    return absl::NotFoundError(
        StrCat("chunk ", id.ToHex(), " is missing (", path, ")"));
  }
  CAIRN_RETURN_IF_ERROR(s);
  auto header = CheckStoredChunk(stored);
  if (!header.ok()) {
    return absl::DataLossError(
        StrCat("chunk file ", path, ": ", header.status().message()));
  }
  return stored;
}

Status ChunkStore::Remove(const ChunkId& id) {
  std::string dir = FanoutDir(id);
  CAIRN_RETURN_IF_ERROR(env_->RemoveFile(ChunkPath(id)));
  std::lock_guard<std::mutex> lock(mu_);
  pending_sync_dirs_.insert(dir);
  return absl::OkStatus();
}

Status ChunkStore::SyncPending() {
  std::set<std::string> dirs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dirs.swap(pending_sync_dirs_);
  }
  // Fan-out directories first, then chunks/ itself (which records new
  // fan-out directories).
  Status result;
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    Status s = env_->SyncDir(*it);
    if (!s.ok() && result.ok()) result = s;
  }
  if (!result.ok()) {
    // Keep them pending so a retry syncs them again.
    std::lock_guard<std::mutex> lock(mu_);
    pending_sync_dirs_.insert(dirs.begin(), dirs.end());
  }
  return result;
}

Status ChunkStore::ForEach(
    const std::function<Status(const ChunkId&)>& fn) const {
  CAIRN_ASSIGN_OR_RETURN(auto fanouts, env_->GetChildren(chunks_dir_));
  for (const auto& f : fanouts) {
    if (f.size() != 4) continue;
    CAIRN_ASSIGN_OR_RETURN(auto names,
                           env_->GetChildren(JoinPath(chunks_dir_, f)));
    for (const auto& name : names) {
      auto id = ChunkId::FromHex(name);
      if (!id.ok() || !absl::StartsWith(name, f)) continue;
      CAIRN_RETURN_IF_ERROR(fn(*id));
    }
  }
  return absl::OkStatus();
}

Status ChunkStore::CleanTemp() {
  CAIRN_ASSIGN_OR_RETURN(auto names, env_->GetChildren(tmp_dir_));
  for (const auto& name : names) {
    CAIRN_RETURN_IF_ERROR(env_->RemoveFile(JoinPath(tmp_dir_, name)));
  }
  if (!names.empty()) CAIRN_RETURN_IF_ERROR(env_->SyncDir(tmp_dir_));
  return absl::OkStatus();
}

}  // namespace cairn
