// FaultInjectionEnv: an Env that wraps a real one and can pretend the
// machine crashed, in the style of LevelDB's fault_injection_test.
//
// It remembers, per file, how much was written and how much was synced, and
// which creations and renames were made durable by a SyncDir of their
// directory. SimulateCrash() then undoes everything a real power cut could
// undo:
//   1. every file is truncated to its last synced length;
//   2. renames whose target directory was not synced since are undone;
//   3. files created in a directory not synced since are deleted.
// It can also fail the next writes, syncs or renames, report a full disk
// after a byte budget, and record which files were opened for reading.
//
// Thread safety: thread-safe.
#ifndef CAIRN_TESTS_TESTING_FAULT_INJECTION_ENV_H_
#define CAIRN_TESTS_TESTING_FAULT_INJECTION_ENV_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/env.h"

namespace cairn::testing {

class FaultInjectionEnv final : public Env {
 public:
  explicit FaultInjectionEnv(Env* base) : base_(base) {}

  // --- Faults ---
  // The next `n` Append calls fail with an I/O error (DataLoss-free: EIO).
  void FailWrites(int n);
  // The next `n` Sync calls (file or directory) fail.
  void FailSyncs(int n);
  // The next `n` RenameFile calls fail.
  void FailRenames(int n);
  // Appends fail with ResourceExhausted once `bytes` more have been written.
  void SetDiskSpace(uint64_t bytes);
  void ClearFaults();

  // Undoes what a power cut could undo (see the class comment) and forgets
  // all tracking state. Call with no files open.
  Status SimulateCrash();

  // Paths opened with NewRandomAccessFile since the last ClearOpened().
  std::vector<std::string> OpenedForRead() const;
  void ClearOpened();

  // --- Env ---
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) override;
  StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status RemoveFile(const std::string& path) override;
  Status CreateDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  StatusOr<std::vector<std::string>> GetChildren(
      const std::string& dir) override;
  StatusOr<FileInfo> Stat(const std::string& path) override;
  StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path) override;

 private:
  friend class FaultWritableFile;
  struct FileState {
    uint64_t written = 0;
    uint64_t synced = 0;
  };
  struct PendingRename {
    std::string from, to;
  };
  Status OnAppend(const std::string& path, size_t n);
  Status OnSync(const std::string& path);

  Env* const base_;
  mutable std::mutex mu_;
  std::map<std::string, FileState> files_;  // written since tracking
  std::map<std::string, std::set<std::string>>
      unsynced_creates_;  // dir -> paths
  std::vector<PendingRename> unsynced_renames_;
  std::set<std::string> unsynced_dirs_;  // dirs created, parent unsynced
  std::vector<std::string> opened_;
  int fail_writes_ = 0, fail_syncs_ = 0, fail_renames_ = 0;
  bool limit_space_ = false;
  uint64_t space_left_ = 0;
};

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_FAULT_INJECTION_ENV_H_
