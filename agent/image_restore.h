// ImageRestore: writes a backed-up image to a target file or block device.
//
// Chunks are fetched and decoded by parallel workers and written at their
// offsets with pwrite. A new or regular-file target is truncated and
// re-sized first, so zero chunks become holes and are not written; on a
// block device zero chunks are written as zeros. The target is fsynced
// before success is reported.
//
// Thread safety: RestoreImage is reentrant.
#ifndef CAIRN_AGENT_IMAGE_RESTORE_H_
#define CAIRN_AGENT_IMAGE_RESTORE_H_

#include <cstdint>
#include <string>

#include "common/image_reader.h"
#include "common/progress.h"
#include "common/status.h"

namespace cairn {

struct RestoreOptions {
  int threads = 0;                      // 0: two per core
  ProgressCounter* progress = nullptr;  // optional; counts image bytes
};

struct RestoreStats {
  uint64_t image_size = 0;
  uint64_t chunks_written = 0;
  uint64_t chunks_zero = 0;
  uint64_t bytes_written = 0;
  double seconds = 0;
};

// A block device target must be at least the image's size
// (FailedPrecondition otherwise).
StatusOr<RestoreStats> RestoreImage(ImageReader* reader,
                                    const std::string& target_path,
                                    const RestoreOptions& options);

}  // namespace cairn

#endif  // CAIRN_AGENT_IMAGE_RESTORE_H_
