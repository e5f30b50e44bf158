// BackupFileSource: read access to one file system of one image backup, as
// the agent's FileRestorer (agent/file_restore.h) needs it - directory
// listings and file contents, with the metadata to restore. BrowseSource
// (agent/browse_source.h) implements it over the media agent's
// BrowseService (proto/cairn/v1/browse.proto); tests use in-memory fakes.
//
// Nothing a source returns is trusted: the restorer checks every name, type
// and size it is given, because a media agent may be compromised.
//
// Thread safety: implementations need not be thread-safe; a FileRestorer
// calls its source from one thread.
#ifndef CAIRN_AGENT_BACKUP_FILE_SOURCE_H_
#define CAIRN_AGENT_BACKUP_FILE_SOURCE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cairn {

// One file of a backup's file system (browse.proto FileEntry, the fields a
// restore uses).
struct BackupFileEntry {
  enum class Type {
    kOther = 0,  // device node, FIFO, socket or unknown: not restored
    kRegular = 1,
    kDirectory = 2,
    kSymlink = 3,
  };
  // Absolute within its file system: "/" for the root, "/etc/hostname".
  // Names are the file system's bytes.
  std::string path;
  Type type = Type::kOther;
  uint64_t size = 0;
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t atime_ns = 0;  // nanoseconds since 1970-01-01 UTC
  int64_t mtime_ns = 0;
  std::string symlink_target;  // kSymlink: as stored, never resolved
};

struct BackupDirectoryListing {
  BackupFileEntry directory;             // the listed directory itself
  std::vector<BackupFileEntry> entries;  // its children
};

class BackupFileSource {
 public:
  virtual ~BackupFileSource() = default;

  // The directory at `path` (absolute, normalized) and its children.
  // NotFound if it does not exist; FailedPrecondition if it is not a
  // directory; the transport's error otherwise.
  virtual StatusOr<BackupDirectoryListing> List(const std::string& path) = 0;

  // Streams the regular file at `path`: `on_entry` once with its entry,
  // then `on_data` with its bytes in order. A symlink is not followed
  // (FailedPrecondition). An error returned by a callback ends the read and
  // is returned as is.
  virtual Status Read(
      const std::string& path,
      const std::function<Status(const BackupFileEntry&)>& on_entry,
      const std::function<Status(std::string_view)>& on_data) = 0;
};

}  // namespace cairn

#endif  // CAIRN_AGENT_BACKUP_FILE_SOURCE_H_
