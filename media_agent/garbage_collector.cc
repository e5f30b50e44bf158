#include "media_agent/garbage_collector.h"

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "common/strings.h"

namespace cairn {

StatusOr<GcReport> CollectGarbage(Repository* repo, const GcOptions& options) {
  CAIRN_RETURN_IF_ERROR(repo->BeginGc());
  absl::Cleanup end_gc = [repo] { repo->EndGc(); };
  GcReport report;

  absl::flat_hash_set<ChunkId> marked;
  CAIRN_ASSIGN_OR_RETURN(auto ids, repo->manifests().List());
  for (const auto& id : ids) {
    auto m = repo->LoadManifest(id, nullptr);
    if (absl::IsNotFound(m.status())) continue;  // pruned meanwhile
    if (!m.ok()) {
      return absl::FailedPreconditionError(
          StrCat("garbage collection stopped before removing anything: ",
                 m.status().message()));
    }
    ++report.manifests_marked;
    for (const ChunkId& c : m->chunks) {
      if (!c.IsZero()) marked.insert(c);
    }
  }
  report.chunks_referenced = marked.size();
  if (options.after_mark) options.after_mark();

  std::vector<ChunkId> candidates;
  CAIRN_RETURN_IF_ERROR(
      repo->chunks().ForEach([&](const ChunkId& id) -> Status {
        ++report.chunks_scanned;
        if (!marked.contains(id)) candidates.push_back(id);
        return absl::OkStatus();
      }));
  for (const ChunkId& id : candidates) {
    auto info = repo->env()->Stat(repo->chunks().ChunkPath(id));
    uint64_t size = info.ok() ? info->size : 0;
    if (options.dry_run) {
      ++report.chunks_removed;
      report.bytes_removed += size;
      continue;
    }
    bool removed = false;
    Status s = repo->RemoveIfUnprotected(id, &removed);
    if (absl::IsNotFound(s)) continue;
    CAIRN_RETURN_IF_ERROR(s);
    if (removed) {
      ++report.chunks_removed;
      report.bytes_removed += size;
    } else {
      ++report.chunks_kept_in_flight;
    }
  }
  if (!options.dry_run) CAIRN_RETURN_IF_ERROR(repo->chunks().SyncPending());
  return report;
}

}  // namespace cairn
