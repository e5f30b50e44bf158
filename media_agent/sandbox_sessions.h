// SandboxSessions: backups attached to libguestfs appliances for the
// sandboxed browse path (media_agent/sandbox_disk.h; docs/browse.md), one
// appliance per backup, shared by concurrent callers and stopped when idle.
//
// Each session has its own thread, which starts the backup's NbdExport (so
// nbdkit, tied to the thread that started it by --exit-with-parent, lives as
// long as the session and not as long as some gRPC worker thread), opens the
// SandboxDisk over its socket, and waits to be stopped. Acquire() returns a
// shared handle; a session no handle uses, last acquired more than
// `idle_timeout` ago, is stopped - checked on every Acquire() and by Reap() -
// and all are stopped by Shutdown().
//
// Thread safety: thread-safe. SandboxDisk serializes its own calls.
#ifndef CAIRN_MEDIA_AGENT_SANDBOX_SESSIONS_H_
#define CAIRN_MEDIA_AGENT_SANDBOX_SESSIONS_H_

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"
#include "media_agent/sandbox_disk.h"

namespace cairn {

struct SandboxSessionOptions {
  std::string repo_root;  // the repository (the caller holds its lock)
  std::chrono::seconds idle_timeout{300};
  CatalogueLimits limits;
};

class SandboxSessions {
 public:
  explicit SandboxSessions(SandboxSessionOptions options);
  ~SandboxSessions();  // Shutdown()
  SandboxSessions(const SandboxSessions&) = delete;
  SandboxSessions& operator=(const SandboxSessions&) = delete;

  // The appliance attached to `backup_id`, started if there is none (an
  // appliance launch takes 20-25 s without KVM). `key_secret`: the 32-byte
  // data key or empty; a live session started with another key is
  // PermissionDenied. Errors of NbdExport::Start and SandboxDisk::Open.
  StatusOr<std::shared_ptr<SandboxDisk>> Acquire(const std::string& backup_id,
                                                 const std::string& key_secret);

  // Stops sessions idle longer than idle_timeout.
  void Reap();
  // Stops every session. Handles still held fail their calls afterwards.
  void Shutdown();
  size_t active_sessions() const;

 private:
  struct Session;
  void StopLocked(std::map<std::string, std::shared_ptr<Session>>::iterator it,
                  std::unique_lock<std::mutex>* lock);

  const SandboxSessionOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;  // guarded by mu_
  bool shut_down_ = false;                                    // guarded by mu_
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_SANDBOX_SESSIONS_H_
