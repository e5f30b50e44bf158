// GarbageCollector: removes chunks no committed manifest references.
//
// Mark and sweep, safe against backups writing at the same time:
//  1. Repository::BeginGc(): from now on every chunk a BackupSession finds or
//     stores is protected, and so is everything open sessions touched before.
//  2. Mark: read every committed manifest (listed after step 1).
//  3. Sweep: each chunk neither marked nor protected is removed under the
//     repository lock (Repository::RemoveIfUnprotected).
// A backup that commits during the GC touched all of its chunks through its
// session, so none of them is swept; a backup whose HasChunks answered "no"
// because the sweep removed the chunk uploads it again. A damaged manifest
// aborts the GC before anything is removed (what it references is unknown).
//
// Thread safety: one GC per repository at a time (FailedPrecondition).
#ifndef CAIRN_MEDIA_AGENT_GARBAGE_COLLECTOR_H_
#define CAIRN_MEDIA_AGENT_GARBAGE_COLLECTOR_H_

#include <cstdint>
#include <functional>

#include "common/status.h"
#include "media_agent/repository.h"

namespace cairn {

struct GcOptions {
  bool dry_run = false;  // report what would go, remove nothing
  // Test hook: called after marking, before sweeping.
  std::function<void()> after_mark;
};

struct GcReport {
  uint64_t manifests_marked = 0;
  uint64_t chunks_referenced = 0;
  uint64_t chunks_scanned = 0;
  uint64_t chunks_removed = 0;  // or that would be removed, in a dry run
  uint64_t bytes_removed = 0;
  uint64_t chunks_kept_in_flight = 0;  // unreferenced, but pinned by a backup
};

StatusOr<GcReport> CollectGarbage(Repository* repo, const GcOptions& options);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_GARBAGE_COLLECTOR_H_
