// Env: the file-system seam every Cairn store writes through.
//
// Modeled on LevelDB's Env: production code uses Env::Default() (POSIX), and
// tests substitute a fault-injecting Env (tests/testing/fault_injection_env.h)
// that can drop unsynced data, fail writes or syncs, or report a full disk, so
// crash consistency is proven by reopen tests rather than assumed.
//
// Thread safety: Env implementations are thread-safe. WritableFile and
// RandomAccessFile objects are not shared between threads unless stated.
#ifndef CAIRN_COMMON_ENV_H_
#define CAIRN_COMMON_ENV_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cairn {

// A file open for sequential writing. Data is durable only after Sync().
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  // fsync(2): data and metadata of this file reach stable storage.
  virtual Status Sync() = 0;
  // Idempotent. The destructor closes too, ignoring errors.
  virtual Status Close() = 0;
};

// A file open for positional reads. Thread-safe (pread).
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to `n` bytes at `offset` into `scratch`; `*result` points at the
  // bytes read (fewer than `n` only at end of file).
  virtual Status Read(uint64_t offset, size_t n, char* scratch,
                      std::string_view* result) const = 0;
  virtual StatusOr<uint64_t> Size() const = 0;
};

struct FileInfo {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool is_directory = false;
};

// An exclusive advisory lock held for the lifetime of the object.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX Env. Never deleted.
  static Env* Default();

  // Creates or truncates `path`.
  virtual StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) = 0;
  virtual StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) = 0;
  // rename(2): atomically replaces `to`. Durable after SyncDir of both dirs.
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // mkdir(2); OK if the directory already exists.
  virtual Status CreateDir(const std::string& path) = 0;
  // fsync(2) on a directory: makes creations, renames and removals in it
  // durable.
  virtual Status SyncDir(const std::string& path) = 0;
  // Names in `dir`, without "." and "..", in no particular order.
  virtual StatusOr<std::vector<std::string>> GetChildren(
      const std::string& dir) = 0;
  // NotFound if `path` does not exist.
  virtual StatusOr<FileInfo> Stat(const std::string& path) = 0;
  // Takes an exclusive lock on `path` (created if missing). Fails with
  // FailedPrecondition if another process holds it.
  virtual StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path) = 0;

  // Reads a whole file. DataLoss-free: errors are the OS's.
  Status ReadFileToString(const std::string& path, std::string* out);
  StatusOr<bool> FileExists(const std::string& path);
};

// Writes `data` to `path` so that a crash leaves either the old file or the
// complete new one, never a partial file: write `tmp_path`, fsync it, rename
// over `path`, fsync the directory of `path` (when `sync_dir`).
// REQUIRES: `tmp_path` is on the same file system as `path`.
Status WriteFileAtomically(Env* env, std::string_view data,
                           const std::string& tmp_path, const std::string& path,
                           bool sync_dir = true);

// Writes a secret (a private key, a data key) so that a crash leaves the old
// file or the complete new one, with mode 0600 from the moment it is created:
// `path`.tmp, fsync, rename, fsync of the directory.
Status WritePrivateFileAtomically(const std::string& path,
                                  std::string_view data);
// Reads a secret file; FailedPrecondition if group or others may access it.
StatusOr<std::string> ReadPrivateFile(const std::string& path);

// "a/b/c" -> "a/b"; "c" -> ".".
std::string DirName(const std::string& path);
std::string JoinPath(std::string_view a, std::string_view b);

}  // namespace cairn

#endif  // CAIRN_COMMON_ENV_H_
