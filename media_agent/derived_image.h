// DerivedImage: stores the image a qcow2 overlay describes - a restore
// build's customized copy of a backup (media_agent/image_customizer.h) - as
// a new image of kind "customized" whose manifest shares every chunk the
// build did not touch with the backup (docs/restore-build.md "Storing the
// result").
//
// How: the overlay is opened read-only by qemu-nbd (socket activation
// through libnbd, no socket file) with the qemu:allocation-depth context.
// Depth 1 means "written in the overlay"; deeper means "the base's bytes";
// 0 means "nowhere" (reads as zeros; the part of a grown disk beyond the
// base). A chunk with no depth-1 byte and the same length as the base's
// chunk at that index keeps the base's chunk id without being read. Every
// other chunk is read through NBD, hashed (keyed when encrypted), stored
// if the sink lacks it, and recorded; all-zero chunks become zero runs.
// The manifest is committed last, after every chunk it names is held
// (ChunkSink::Commit); a reused chunk is confirmed present first, which
// also pins it against garbage collection for the duration.
//
// Thread safety: no shared state; `sink` is used from the calling thread.
#ifndef CAIRN_MEDIA_AGENT_DERIVED_IMAGE_H_
#define CAIRN_MEDIA_AGENT_DERIVED_IMAGE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "common/chunk_sink.h"
#include "common/data_key.h"
#include "common/manifest.h"
#include "common/status.h"

namespace cairn {

struct DerivedImageOptions {
  std::string overlay_path;        // qcow2 backed by the base image
  const Manifest* base = nullptr;  // the base's manifest; not owned
  std::string new_id;              // the new image's id (ValidateBackupId)
  std::string source;              // manifest `source` of the new image
  int64_t created_unix_us = 0;
  std::string profile_ref;  // the target profile's reference
  // The base's key; required when the base is encrypted (the new image
  // uses the same key and fingerprint). Not owned.
  const DataKey* key = nullptr;
  int zstd_level = 3;
  std::string qemu_nbd = "qemu-nbd";
  // Called after each batch of chunks: (bytes done, image size).
  std::function<void(uint64_t, uint64_t)> progress;
};

struct DerivedImageStats {
  uint64_t image_size = 0;
  uint64_t chunks = 0;         // in the new manifest
  uint64_t chunks_reused = 0;  // base chunks kept without reading
  uint64_t chunks_read = 0;    // read through NBD
  uint64_t chunks_zero = 0;    // all-zero (stored as runs)
  uint64_t chunks_new = 0;     // stored by this call (the sink lacked them)
  uint64_t bytes_read = 0;
  uint64_t new_stored_bytes = 0;  // stored form of the new chunks
};

// Errors: InvalidArgument for a missing base, a bad id, or a base that is
// encrypted without `key`; Unavailable when qemu-nbd cannot open the
// overlay (libnbd's message); FailedPrecondition when the NBD server lacks
// qemu:allocation-depth; DataLoss when a base chunk the new image keeps is
// missing from the store; the sink's errors (AlreadyExists for a taken id).
StatusOr<DerivedImageStats> WriteDerivedImage(
    const DerivedImageOptions& options, ChunkSink* sink, Manifest* manifest);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_DERIVED_IMAGE_H_
