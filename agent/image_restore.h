// ImageRestore: writes a backed-up image to a target file or block device,
// optionally resuming an interrupted restore and verifying the result by
// re-reading it.
//
// Chunks are fetched and decoded by parallel workers and written at their
// offsets with pwrite. Without `resume`, a new or regular-file target is
// truncated and re-sized first, so zero chunks become holes and are not
// written; on a block device zero chunks are written as zeros.
//
// Resume (stateless): the target is not truncated (a regular file is only
// re-sized to the image size). For each chunk the target's region is read
// first; a zero chunk whose region reads as zeros, or a data chunk whose
// region has the manifest's chunk id (common/chunk_format.h
// ComputeChunkId, keyed by the data key when the backup is encrypted), is
// skipped without being fetched. Everything else is fetched and written.
// So running a restore again after any interruption writes only what is
// still missing or wrong.
//
// Verify: after the writes and fsync, the target's page cache for the range
// is dropped (posix_fadvise DONTNEED) and the whole image range is read back;
// each chunk's id must match the manifest (zeros for zero chunks). A
// mismatch or short read is DataLoss naming the offset and chunk.
//
// Progress (`options.progress`) counts image bytes once for the write phase
// (written, skipped and zero chunks alike) and, with `verify`, once more for
// the verify phase: size its total as image_size * (verify ? 2 : 1).
//
// Thread safety: RestoreImage is reentrant.
#ifndef CAIRN_AGENT_IMAGE_RESTORE_H_
#define CAIRN_AGENT_IMAGE_RESTORE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "common/data_key.h"
#include "common/image_reader.h"
#include "common/progress.h"
#include "common/status.h"

namespace cairn {

struct RestoreOptions {
  int threads = 0;                      // 0: two per core
  ProgressCounter* progress = nullptr;  // optional; see above
  // The backup's data key (not owned), for chunk ids when resuming or
  // verifying an encrypted backup; unused for an unencrypted one.
  const DataKey* key = nullptr;
  bool resume = false;
  // Off here so library callers opt in; restore jobs verify by default
  // (RestoreJob::verify, `cairnctl restore start --no-verify`).
  bool verify = false;
  // Test hook, null in production: called after the writes are fsynced and
  // before the verify phase (a test corrupts the target here to prove that
  // verification re-reads the disk). An error fails the restore.
  std::function<Status()> before_verify;
};

struct RestoreStats {
  uint64_t image_size = 0;
  uint64_t chunks_written = 0;  // written (zero chunks too, when they had
                                // to be written)
  uint64_t chunks_zero = 0;     // zero chunks left as holes in a fresh file
  uint64_t chunks_skipped = 0;  // resume: chunks (data or zero) in place
  uint64_t bytes_written = 0;
  uint64_t bytes_skipped = 0;  // resume: bytes of the skipped chunks
  bool verified = false;       // the verify phase ran and passed
  uint64_t bytes_verified = 0;
  double seconds = 0;
};

// A block device target must be at least the image's size
// (FailedPrecondition otherwise). An encrypted backup resumed or verified
// without `options.key` is FailedPrecondition before anything is opened.
StatusOr<RestoreStats> RestoreImage(ImageReader* reader,
                                    const std::string& target_path,
                                    const RestoreOptions& options);

}  // namespace cairn

#endif  // CAIRN_AGENT_IMAGE_RESTORE_H_
