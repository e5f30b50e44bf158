// Publishing a finished file under its final name, crash-safely: the file is
// written under a temporary name in the destination's directory, fsync'ed,
// then moved into place and the directory fsync'ed, so the final name only
// ever holds a complete file (DESIGN.md section 10, "write, fsync, rename").
//
// Thread safety: pure functions over the file system.
#ifndef CAIRN_COMMON_FILE_PUBLISH_H_
#define CAIRN_COMMON_FILE_PUBLISH_H_

#include <string>

#include "common/status.h"

namespace cairn {

// fsync() of a finished file; with `make_private` its mode becomes 0600
// first (it holds decrypted data).
Status SyncFile(const std::string& path, bool make_private);

// fsync() of a directory (after a rename or unlink in it).
Status SyncDirectory(const std::string& dir);

// Moves `from` to `to` (same file system) without syncing the directory.
// Without `overwrite` an existing `to` is refused atomically
// (RENAME_NOREPLACE, or link()+unlink() where the file system lacks it) with
// AlreadyExists; with it, rename() replaces it.
Status MoveIntoPlace(const std::string& from, const std::string& to,
                     bool overwrite);

// MoveIntoPlace, then fsyncs the directory of `to`.
Status PublishFile(const std::string& from, const std::string& to,
                   bool overwrite);

}  // namespace cairn

#endif  // CAIRN_COMMON_FILE_PUBLISH_H_
