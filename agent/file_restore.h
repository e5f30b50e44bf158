// FileRestorer: restores a regular file, a symlink or a whole directory tree
// of a backup onto this machine (a FILE_RESTORE job, `cairnctl browse get
// --to-agent`; docs/browse.md). It reads through an abstract
// BackupFileSource (agent/backup_file_source.h) and knows nothing of gRPC.
//
// What it does, for Restore(source_path, target_path):
//   1. Plans: finds the source's entry (in its parent's listing, so a
//      symlink is seen as one) and, for a directory, lists the whole tree
//      below it. Every listed name must be one safe component below its
//      directory - not empty, ".", ".." and without '/' or NUL - or the
//      restore is refused (DataLoss, "path traversal") before anything is
//      written. Device nodes, FIFOs and sockets are skipped (counted).
//   2. Writes, relative to directory file descriptors only: the target's
//      parent must exist and is opened with O_DIRECTORY | O_NOFOLLOW (a
//      parent that is a symlink is refused); directories below it are opened
//      with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//      RESOLVE_NO_MAGICLINKS), or component by component with O_NOFOLLOW
//      where openat2 is missing (ENOSYS). Nothing is ever opened through a
//      symlink, so no write leaves the destination.
//        - a file is written to a temporary file in its directory
//          (".cairn-restore-<random>", O_CREAT | O_EXCL, mode 0600), given
//          its owner (when `restore_owner`), then its mode (after the owner,
//          which would clear setuid/setgid bits), times, fsync, and renamed
//          over its name: a symlink there is replaced, never followed;
//        - a symlink is created under a temporary name with its target as
//          stored (never resolved), given its owner and times, and renamed
//          over its name;
//        - a directory is created (mode 0700 while it is filled) or, if one
//          exists, restored into; a non-directory in its place is removed
//          first (a symlink is unlinked, not followed). Mode, owner and
//          times are applied after its contents, deepest first, and every
//          directory is fsynced.
//      The target path names the restored item itself (an existing
//      directory there is merged into for a directory, refused for a file).
//   3. Progress: once planned, `on_started` gets a counter whose total is the
//      bytes of every regular file; it advances as data is written.
//
// Errors: InvalidArgument for a malformed path; NotFound for a source path
// not in the backup or a missing target parent; FailedPrecondition for a
// target parent that is a symlink or not a directory, a file whose target
// is an existing directory, or an unrestorable source type; DataLoss for an
// unsafe name, or a file whose content differs from its listed size or
// type; Cancelled (JobCancelledStatus) once `cancel` is set; the source's
// or the file system's error otherwise. A failure leaves no temporary file
// behind; what was restored before it stays.
//
// Thread safety: one Restore at a time per FileRestorer.
#ifndef CAIRN_AGENT_FILE_RESTORE_H_
#define CAIRN_AGENT_FILE_RESTORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/backup_file_source.h"
#include "agent/cancellation.h"
#include "common/progress.h"
#include "common/status.h"

namespace cairn {

struct FileRestoreOptions {
  const CancellationFlag* cancel = nullptr;  // optional, not owned
  // Called once the restore is planned, with the counter it advances (total:
  // the bytes of every regular file). May be empty.
  std::function<void(std::shared_ptr<const ProgressCounter>)> on_started;
  // Apply uid/gid from the backup; unset: when running as root.
  std::optional<bool> restore_owner;
  // Most entries one restore plans (ResourceExhausted beyond).
  size_t max_entries = 5'000'000;
  // Open directories by the O_NOFOLLOW component walk even where openat2
  // exists (the fallback's tests).
  bool force_component_walk = false;
};

struct FileRestoreStats {
  uint64_t files = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t skipped = 0;  // device nodes, FIFOs, sockets
  uint64_t bytes = 0;    // file content written
};

class FileRestorer {
 public:
  // `source` is not owned and must outlive the restorer.
  FileRestorer(BackupFileSource* source, FileRestoreOptions options);

  // Restores the file, symlink or directory at `source_path` in the
  // backup's file system (absolute; empty and "." components allowed, ".."
  // refused) so that it is `target_path` on this machine (absolute, below
  // "/", no ".."). See the top of this file.
  StatusOr<FileRestoreStats> Restore(const std::string& source_path,
                                     const std::string& target_path);

 private:
  BackupFileSource* const source_;
  const FileRestoreOptions options_;
};

}  // namespace cairn

#endif  // CAIRN_AGENT_FILE_RESTORE_H_
