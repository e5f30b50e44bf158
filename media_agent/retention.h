// Retention: which backups a policy keeps (keep-last, -hourly, -daily,
// -weekly, -monthly, -yearly), and pruning a repository by it.
//
// Semantics follow restic's `forget` and borg's `prune`, per source: sort
// the source's backups newest first; keep-last N keeps the N newest; each
// keep-<period> N keeps the newest backup of each of the N most recent
// periods that have a backup. A backup kept by any rule is kept. Periods are
// calendar periods in UTC; weeks start on Monday (ISO 8601).
//
// Pruning removes manifests only; the chunks they alone referenced go at the
// next garbage collection. Every manifest lists every chunk, so removing a
// backup never breaks another one, incremental or not.
//
// Thread safety: pure functions; Prune is as safe as Repository::DeleteBackup.
#ifndef CAIRN_MEDIA_AGENT_RETENTION_H_
#define CAIRN_MEDIA_AGENT_RETENTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "media_agent/repository.h"

namespace cairn {

struct RetentionPolicy {
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  int keep_yearly = 0;
  bool KeepsNothing() const;
};

struct BackupRef {
  std::string backup_id;
  std::string source;
  int64_t created_unix_us = 0;
};

struct RetentionDecision {
  BackupRef backup;
  bool keep = false;
  std::vector<std::string> reasons;  // "last", "daily 2026-11-20", ...
};

// Decisions for every backup, grouped by source, newest first within each
// source. InvalidArgument for negative counts or a policy that keeps
// nothing (refused, like restic, so a typo cannot delete everything).
StatusOr<std::vector<RetentionDecision>> ApplyRetention(
    std::vector<BackupRef> backups, const RetentionPolicy& policy);

struct PruneOptions {
  RetentionPolicy policy;
  std::string source;  // empty: every source
  bool dry_run = false;
};

struct PruneReport {
  std::vector<RetentionDecision> decisions;
  uint64_t removed = 0;  // manifests removed (0 in a dry run)
};

// Applies the policy to the repository's backups. A damaged manifest stops
// the prune before anything is removed.
StatusOr<PruneReport> Prune(Repository* repo, const PruneOptions& options);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_RETENTION_H_
