// RestoreBuilds: restore plans and restore builds run by the storage manager
// (DESIGN.md section 5; docs/restore-build.md). Knows nothing of gRPC: the
// Admin handlers DiffProfiles (with restore_plan) and StartRestoreBuild call
// Plan() and Start().
//
// Plan: the source profile is the one recorded with the backup, the target
// a client's latest profile or a supplied one; ProfileDiff, then
// PlanCustomization (server/customization_plan.h). With the conflict choice
// "use-template-kernel" the named boot template (Catalog templates) gives
// the kernel and its profile.
//
// Build: a plan with blockers is refused (FailedPrecondition listing them).
// The cache key of a build is (backup, BuildKey(plan)): the target profile's
// id and a digest of the plan, so the same backup customized for the same
// hardware with the same choices is built once; Start() returns the image
// an earlier build recorded (Catalog::FindCustomizedImage) unless `rebuild`.
// Otherwise a restore-build job is queued (kind kRestoreBuild: client = the
// backup's client, backup_id = the source backup) and one worker thread runs
// the builds in order, on the embedded media agent's repository with
// BuildCustomizedImage (media_agent/restore_builder.h): the job runs,
// reports its phase and commit progress (UpdateJobProgress, JobEvents),
// and succeeds by Catalog::CommitBackup of the new image (kind customized,
// parent = the backup, profile_ref = the target profile, build_key), whose
// id is "<backup>-c<job id>". Builds of backups held by a separate media
// agent are Unimplemented here (they run with `cairn-media restore build` on
// that host).
//
// Cancel: a queued build is cancelled by the JobEngine like any job; a
// running one is asked to stop (CancelRunning) and stops at its next phase
// or step boundary. A build whose job is no longer running when it finishes
// (cancelled, or the catalog refused it) has its manifest deleted again, so
// the store keeps no image the catalog does not know; its new chunks are
// left to garbage collection.
//
// Restart: builds queued when the server stopped are failed when the next
// server starts (their plans lived in memory).
//
// Thread safety: thread-safe.
#ifndef CAIRN_SERVER_RESTORE_BUILDS_H_
#define CAIRN_SERVER_RESTORE_BUILDS_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cairn/v1/profile.pb.h"
#include "cairn/v1/restore_build.pb.h"
#include "common/status.h"
#include "server/catalog.h"
#include "server/client_profiles.h"
#include "server/job_events.h"

namespace cairn {

class Repository;

// What a plan is made for.
struct RestoreTargetSpec {
  std::string source_backup_id;
  // Exactly one of: a client whose latest profile is the target, or a
  // supplied profile (zstd of the serialized HardwareProfile).
  std::string target_client_id;
  std::string target_profile_zstd;
  uint64_t target_raw_size = 0;
  std::vector<std::string> nic_map;  // "source=target" (name or MAC)
  std::string conflict_choice;       // "", use-template-kernel, ...
  bool drop_guest_tools = false;
  std::string template_name;  // the boot template for use-template-kernel
};

struct RestorePlan {
  v1::ProfileDiffPlan diff;
  v1::CustomizationPlan plan;
  std::string source_profile_sha256;
  std::string target_profile_sha256;
};

struct RestoreBuildStart {
  RestorePlan plan;
  std::optional<Job> job;             // the queued build, or
  std::optional<BackupEntry> cached;  // the image an earlier build made
};

struct RestoreBuildsOptions {
  // The embedded media agent's repository; null: no builds on this server.
  Repository* repository = nullptr;
  std::string data_key;  // the policy's data key (32 bytes) or empty
  // Parent of each build's private work directory (its qcow2 overlay);
  // empty: $TMPDIR or /tmp.
  std::string work_dir;
};

// "<target profile sha256>/<first 16 hex of SHA-256 of the plan>": the plan
// serialized deterministically without `target` and `steps` (two names for
// the same hardware share a build; the steps are only its description).
std::string BuildKey(const v1::CustomizationPlan& plan);

class RestoreBuilds {
 public:
  // Nothing is owned; all must outlive this object. Fails the restore-build
  // jobs a previous server left queued.
  RestoreBuilds(Catalog* catalog, const ClientProfiles* profiles,
                JobEvents* events, RestoreBuildsOptions options);
  // Shutdown().
  ~RestoreBuilds();
  RestoreBuilds(const RestoreBuilds&) = delete;
  RestoreBuilds& operator=(const RestoreBuilds&) = delete;

  // InvalidArgument for a missing backup or target, both targets, or a bad
  // NIC mapping; NotFound for an unknown backup, client, profile or
  // template; the diff's and planner's errors.
  StatusOr<RestorePlan> Plan(const RestoreTargetSpec& spec) const;

  // Plans, then returns the cached image or queues a build (see above).
  // FailedPrecondition when the plan has blockers or the backup is not
  // available; Unimplemented for a backup on a separate media agent or a
  // server without an embedded one. `audit` is written with the new job.
  StatusOr<RestoreBuildStart> Start(const RestoreTargetSpec& spec, bool rebuild,
                                    const std::string& requested_by,
                                    const AuditEntry* audit = nullptr);

  // Asks the running build of `job_id`, if any, to stop (the caller has
  // already marked the job cancelled in the catalog). Returns whether it
  // was running here.
  bool CancelRunning(uint64_t job_id);

  // Stops taking builds, asks the running one to stop and joins the worker.
  // Queued builds stay queued in the catalog (failed at the next start).
  // Idempotent.
  void Shutdown();

 private:
  struct Queued {
    uint64_t job_id;
    v1::CustomizationPlan plan;
    BackupEntry source;
  };

  void Run();
  void Build(const Queued& q);
  Status BuildAndRecord(const Queued& q);

  Catalog* const catalog_;
  const ClientProfiles* const profiles_;
  JobEvents* const events_;
  const RestoreBuildsOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_;
  uint64_t running_job_ = 0;
  std::atomic<bool> cancel_running_{false};
  bool shutdown_ = false;
  std::thread worker_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_RESTORE_BUILDS_H_
