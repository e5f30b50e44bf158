// Sparse files streamed as data extents: the sender reads only the allocated
// ranges of a file (SEEK_DATA/SEEK_HOLE) and the receiver writes them at
// their offsets, so holes stay holes on both sides; both hash the whole
// content (holes as zeros) so the receiver checks it got exactly the file.
// Used by `cairnctl export` (Admin.ExportImage, docs/export.md).
//
// Hand-written: no Debian library streams sparse files with a content hash.
//
// Thread safety: ReadDataExtents is reentrant; a SparseFileReceiver is used
// by one thread.
#ifndef CAIRN_COMMON_SPARSE_FILE_H_
#define CAIRN_COMMON_SPARSE_FILE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/crypto.h"
#include "common/status.h"

namespace cairn {

struct SparseFileSummary {
  uint64_t file_size = 0;
  uint64_t data_bytes = 0;  // bytes in data extents (what was sent)
  std::string sha256_hex;   // of the whole content, holes as zeros
};

// Calls fn(offset, data) for the data extents of `path` in ascending order,
// in pieces of at most `max_piece` bytes (> 0). Stops at fn's first error
// and returns it. A file system without SEEK_DATA is read as one extent.
StatusOr<SparseFileSummary> ReadDataExtents(
    const std::string& path, size_t max_piece,
    const std::function<Status(uint64_t offset, std::string_view data)>& fn);

// Receives a file into a hidden temporary file next to `destination`
// (".<name>.cairn-XXXXXX", mode 0600) and publishes it under its name only
// once complete and verified (common/file_publish.h). Dropping an
// uncommitted receiver removes the temporary file.
class SparseFileReceiver {
 public:
  // The destination's directory must exist. Without `overwrite` an existing
  // destination is refused now (AlreadyExists) and again at the rename.
  static StatusOr<std::unique_ptr<SparseFileReceiver>> Create(
      const std::string& destination, bool overwrite);
  ~SparseFileReceiver();
  SparseFileReceiver(const SparseFileReceiver&) = delete;
  SparseFileReceiver& operator=(const SparseFileReceiver&) = delete;

  // Writes `data` at `offset`. Extents must come in ascending order without
  // overlap (InvalidArgument otherwise); the gap before one is a hole.
  Status Write(uint64_t offset, std::string_view data);
  // Sets the size to `file_size` (>= the end of the last extent), fsyncs,
  // checks the content's SHA-256 against `sha256_hex` (DataLoss on a
  // mismatch: the temporary file is removed) and publishes the file.
  Status Commit(uint64_t file_size, std::string_view sha256_hex);

  uint64_t received_bytes() const { return received_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  SparseFileReceiver(int fd, std::string temp_path, std::string destination,
                     bool overwrite);
  void HashZeros(uint64_t count);

  int fd_;
  const std::string temp_path_;
  const std::string destination_;
  const bool overwrite_;
  uint64_t end_ = 0;  // end of the content written or hashed so far
  uint64_t received_ = 0;
  crypto::Sha256Stream hash_;
  bool committed_ = false;
};

}  // namespace cairn

#endif  // CAIRN_COMMON_SPARSE_FILE_H_
