#include "tests/testing/fault_injection_env.h"

#include <unistd.h>

#include <algorithm>

#include "common/strings.h"

namespace cairn::testing {

class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultInjectionEnv* env, std::string path,
                    std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}
  Status Append(std::string_view data) override {
    size_t allowed = data.size();
    Status fault;
    {
      std::lock_guard<std::mutex> lock(env_->mu_);
      if (env_->fail_writes_ > 0) {
        --env_->fail_writes_;
        return absl::DataLossError(StrCat("injected write error on ", path_));
      }
      if (env_->limit_space_) {
        if (env_->space_left_ < data.size()) {
          allowed = env_->space_left_;
          fault = absl::ResourceExhaustedError(
              StrCat("write ", path_, ": No space left on device (injected)"));
        }
        env_->space_left_ -= allowed;
      }
      env_->files_[path_].written += allowed;
    }
    CAIRN_RETURN_IF_ERROR(base_->Append(data.substr(0, allowed)));
    return fault;
  }
  Status Sync() override {
    {
      std::lock_guard<std::mutex> lock(env_->mu_);
      if (env_->fail_syncs_ > 0) {
        --env_->fail_syncs_;
        return absl::DataLossError(StrCat("injected fsync error on ", path_));
      }
    }
    CAIRN_RETURN_IF_ERROR(base_->Sync());
    std::lock_guard<std::mutex> lock(env_->mu_);
    auto& st = env_->files_[path_];
    st.synced = st.written;
    return absl::OkStatus();
  }
  Status Close() override { return base_->Close(); }

 private:
  FaultInjectionEnv* env_;
  std::string path_;
  std::unique_ptr<WritableFile> base_;
};

void FaultInjectionEnv::FailWrites(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_writes_ = n;
}
void FaultInjectionEnv::FailSyncs(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_syncs_ = n;
}
void FaultInjectionEnv::FailRenames(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_renames_ = n;
}
void FaultInjectionEnv::SetDiskSpace(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  limit_space_ = true;
  space_left_ = bytes;
}
void FaultInjectionEnv::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  fail_writes_ = fail_syncs_ = fail_renames_ = 0;
  limit_space_ = false;
}

std::vector<std::string> FaultInjectionEnv::OpenedForRead() const {
  std::lock_guard<std::mutex> lock(mu_);
  return opened_;
}
void FaultInjectionEnv::ClearOpened() {
  std::lock_guard<std::mutex> lock(mu_);
  opened_.clear();
}

StatusOr<std::unique_ptr<WritableFile>> FaultInjectionEnv::NewWritableFile(
    const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(bool existed, base_->FileExists(path));
  CAIRN_ASSIGN_OR_RETURN(auto file, base_->NewWritableFile(path));
  std::lock_guard<std::mutex> lock(mu_);
  files_[path] = FileState{};
  if (!existed) unsynced_creates_[DirName(path)].insert(path);
  return std::unique_ptr<WritableFile>(
      new FaultWritableFile(this, path, std::move(file)));
}

StatusOr<std::unique_ptr<RandomAccessFile>>
FaultInjectionEnv::NewRandomAccessFile(const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    opened_.push_back(path);
  }
  return base_->NewRandomAccessFile(path);
}

Status FaultInjectionEnv::RenameFile(const std::string& from,
                                     const std::string& to) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_renames_ > 0) {
      --fail_renames_;
      return absl::DataLossError(StrCat("injected rename error on ", from));
    }
  }
  CAIRN_RETURN_IF_ERROR(base_->RenameFile(from, to));
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = files_.find(from); it != files_.end()) {
    files_[to] = it->second;
    files_.erase(it);
  }
  auto& from_creates = unsynced_creates_[DirName(from)];
  if (from_creates.erase(from) > 0) {
    // The file's only link is now in `to`'s directory; it is durable when
    // that directory is synced.
    unsynced_creates_[DirName(to)].insert(to);
  } else {
    unsynced_renames_.push_back({from, to});
  }
  return absl::OkStatus();
}

Status FaultInjectionEnv::RemoveFile(const std::string& path) {
  CAIRN_RETURN_IF_ERROR(base_->RemoveFile(path));
  std::lock_guard<std::mutex> lock(mu_);
  files_.erase(path);
  unsynced_creates_[DirName(path)].erase(path);
  return absl::OkStatus();
}

Status FaultInjectionEnv::CreateDir(const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(bool existed, base_->FileExists(path));
  CAIRN_RETURN_IF_ERROR(base_->CreateDir(path));
  if (!existed) {
    std::lock_guard<std::mutex> lock(mu_);
    unsynced_dirs_.insert(path);
  }
  return absl::OkStatus();
}

Status FaultInjectionEnv::SyncDir(const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_syncs_ > 0) {
      --fail_syncs_;
      return absl::DataLossError(
          StrCat("injected fsync error on directory ", path));
    }
  }
  CAIRN_RETURN_IF_ERROR(base_->SyncDir(path));
  std::lock_guard<std::mutex> lock(mu_);
  unsynced_creates_.erase(path);
  std::erase_if(unsynced_renames_,
                [&](const PendingRename& r) { return DirName(r.to) == path; });
  std::erase_if(unsynced_dirs_,
                [&](const std::string& d) { return DirName(d) == path; });
  return absl::OkStatus();
}

StatusOr<std::vector<std::string>> FaultInjectionEnv::GetChildren(
    const std::string& dir) {
  return base_->GetChildren(dir);
}
StatusOr<FileInfo> FaultInjectionEnv::Stat(const std::string& path) {
  return base_->Stat(path);
}
StatusOr<std::unique_ptr<FileLock>> FaultInjectionEnv::LockFile(
    const std::string& path) {
  return base_->LockFile(path);
}

Status FaultInjectionEnv::SimulateCrash() {
  std::lock_guard<std::mutex> lock(mu_);
  // 1. Unsynced data is lost.
  for (const auto& [path, st] : files_) {
    if (st.synced < st.written && ::truncate(path.c_str(), st.synced) != 0 &&
        errno != ENOENT) {
      return ErrnoToStatus(errno, "truncate", path);
    }
  }
  // 2. Renames not made durable are undone, newest first.
  for (auto it = unsynced_renames_.rbegin(); it != unsynced_renames_.rend();
       ++it) {
    Status s = base_->RenameFile(it->to, it->from);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  // 3. Creations not made durable vanish.
  for (const auto& [dir, paths] : unsynced_creates_) {
    for (const auto& p : paths) {
      Status s = base_->RemoveFile(p);
      if (!s.ok() && !absl::IsNotFound(s)) return s;
    }
  }
  // 4. Directories whose parent was never synced vanish with their contents.
  std::vector<std::string> dirs(unsynced_dirs_.begin(), unsynced_dirs_.end());
  std::sort(dirs.begin(), dirs.end(),
            [](const std::string& a, const std::string& b) {
              return a.size() > b.size();
            });
  for (const auto& d : dirs) {
    auto children = base_->GetChildren(d);
    if (!children.ok()) continue;
    for (const auto& c : *children)
      base_->RemoveFile(JoinPath(d, c)).IgnoreError();
    ::rmdir(d.c_str());
  }
  files_.clear();
  unsynced_creates_.clear();
  unsynced_renames_.clear();
  unsynced_dirs_.clear();
  return absl::OkStatus();
}

}  // namespace cairn::testing
