// TempDir: a private directory (mkdtemp, mode 0700) that is removed with
// everything in it when the TempDir is destroyed. Used for work files that
// must not outlive an operation: a restore build's overlay, an export's
// socket and partial file, an appliance's sockets.
//
// Thread-compatible. The destructor never fails (errors are ignored: the
// directory is in a temporary location and nothing refers to it).
#ifndef CAIRN_COMMON_TEMP_DIR_H_
#define CAIRN_COMMON_TEMP_DIR_H_

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn {

class TempDir {
 public:
  // Creates PARENT/PREFIX-XXXXXX. `parent` empty: $TMPDIR, else /tmp. Errors:
  // mkdtemp's, as ErrnoToStatus names them (NotFound for a missing parent,
  // PermissionDenied, ...).
  static StatusOr<std::unique_ptr<TempDir>> Create(
      std::string_view prefix, const std::string& parent = "");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace cairn

#endif  // CAIRN_COMMON_TEMP_DIR_H_
