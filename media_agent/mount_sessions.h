// Mount sessions: backups mounted on the media agent's host for browse and
// file-level recovery (DESIGN.md section 6; issue 7), shared by reference
// count and stopped when idle.
//
// A session is one backup exported by an nbdkit process (NbdExport, Cairn's
// plugin, lock=none - the caller holds the repository's lock) and attached
// as a PseudoDisk, with every partition it can mount mounted read-only:
//   RUNTIME/s-XXXXXX/cairn-nbd-XXXXXX/   nbdkit's socket, pid file, log
//   RUNTIME/s-XXXXXX/disk/               the PseudoDisk (fuse/disk, p<N>/)
// RUNTIME/lock is held by the manager for its lifetime, so one manager owns
// a runtime directory; at creation it removes what a crashed predecessor left
// there (CleanStalePseudoDisks).
//
// Acquire() hands out std::shared_ptr handles. The session lives while any
// handle does; when the last one is dropped it becomes idle and the reaper
// thread stops it idle_timeout later (unless it is acquired again first).
//
// Every session is started and stopped by a thread of its own that lives as
// long as the session: nbdkit and nbdfuse are bound to the thread that
// started them (PR_SET_PDEATHSIG), so they must not be started from a
// caller's short-lived thread.
//
// Thread safety: MountSessionManager is thread-safe. A MountSession is
// immutable to its holders; its disk()'s const accessors are safe while the
// session is being stopped (PseudoDisk's contract).
#ifndef CAIRN_MEDIA_AGENT_MOUNT_SESSIONS_H_
#define CAIRN_MEDIA_AGENT_MOUNT_SESSIONS_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "common/env.h"
#include "common/status.h"
#include "media_agent/nbd_export.h"
#include "media_agent/pseudo_disk.h"

namespace cairn {

struct MountSessionOptions {
  // The repository. The caller holds its lock for the manager's lifetime
  // (the exports run with lock=none).
  std::string repo_root;
  // Parent of the session directories; created with mode 0700 if missing,
  // must be private (owned by this user, no group/other write). Keep it
  // short: nbdkit's Unix socket path lives below it (107 bytes at most).
  std::string runtime_dir;
  std::chrono::seconds idle_timeout{300};
  std::string nbdkit_path;       // empty: "nbdkit" on $PATH
  std::string plugin_path;       // empty: FindNbdPlugin()
  std::string nbdfuse_path;      // empty: "nbdfuse" on $PATH
  int mount_timeout_ms = 30000;  // PseudoDiskOptions::timeout_ms
};

// One backup, exported and attached. Obtained from Acquire(); valid as long
// as the handle is held, even after the manager stopped it (Shutdown()) -
// then its mounts are gone (disk().attached() is false).
class MountSession {
 public:
  const std::string& backup_id() const { return backup_id_; }
  const PseudoDisk& disk() const { return *disk_; }
  // RUNTIME/s-XXXXXX.
  const std::string& dir() const { return dir_; }
  // The live ExportedImage is not available here: nbdkit is a separate
  // process.

 private:
  friend class MountSessionManager;
  MountSession() = default;

  std::string backup_id_;
  std::string dir_;
  std::unique_ptr<NbdExport> export_;  // used by the session's thread only
  std::unique_ptr<PseudoDisk> disk_;   // never reset once set
};

class MountSessionManager {
 public:
  // Creates the runtime directory, takes RUNTIME/lock (FailedPrecondition if
  // another manager holds it), removes stale sessions left there (logged) and
  // starts the idle reaper. InvalidArgument for missing options.
  static StatusOr<std::unique_ptr<MountSessionManager>> Create(
      const MountSessionOptions& options);

  // Shutdown().
  ~MountSessionManager();
  MountSessionManager(const MountSessionManager&) = delete;
  MountSessionManager& operator=(const MountSessionManager&) = delete;

  // The session of `backup_id`, started (NbdExport + PseudoDisk) if there is
  // none; `key_secret` is the backup's 32-byte data key, or empty for an
  // unencrypted backup (the caller keeps and wipes its copy). Concurrent
  // Acquires of one backup start it once; the others wait for it. The
  // handle keeps the session alive.
  // Errors: InvalidArgument for a malformed id or key; PermissionDenied if
  // the session is live with another key (SHA-256 of the secrets compared in
  // constant time); NbdExport::Start's and PseudoDisk::Attach's errors if it
  // cannot start (NotFound for an unknown backup, FailedPrecondition for a
  // wrong key, ...); FailedPrecondition after Shutdown(). A session whose
  // partitions could not be mounted is still a session: see
  // disk().filesystems().
  StatusOr<std::shared_ptr<const MountSession>> Acquire(
      const std::string& backup_id, const std::string& key_secret);

  // Stops every session - also those in use: their handles stay valid
  // objects whose mounts are gone - and the reaper, and waits for all of it.
  // Idempotent.
  void Shutdown();

  // Sessions starting, live or being stopped.
  size_t active_sessions() const;

  // Stops (and waits for) every session idle since before
  // `now - idle_timeout`, as the reaper would at time `now`.
  void ReapIdleForTest(std::chrono::steady_clock::time_point now);

  const MountSessionOptions& options() const { return options_; }

 private:
  struct Core;
  struct Entry;

  MountSessionManager(const MountSessionOptions& options,
                      std::unique_ptr<FileLock> lock);
  static void RunSession(std::shared_ptr<Core> core,
                         std::shared_ptr<Entry> entry,
                         MountSessionOptions options, std::string key_secret);
  static std::shared_ptr<const MountSession> MakeHandle(
      const std::shared_ptr<Core>& core, const std::shared_ptr<Entry>& entry);
  void ReaperLoop();

  MountSessionOptions options_;
  std::unique_ptr<FileLock> lock_;
  std::shared_ptr<Core> core_;
  std::thread reaper_;
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_MOUNT_SESSIONS_H_
