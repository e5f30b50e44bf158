#include "media_agent/sandbox_sessions.h"

#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "common/strings.h"
#include "media_agent/key_handover.h"
#include "media_agent/nbd_export.h"

namespace cairn {

struct SandboxSessions::Session {
  std::string key_digest;  // SHA-256 of the key secret ("" without a key)
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;                 // guarded by mu: started (or failed)
  bool stop = false;                  // guarded by mu
  Status status;                      // guarded by mu: why it failed to start
  std::shared_ptr<SandboxDisk> disk;  // set once ready and OK
  std::chrono::steady_clock::time_point last_release;
};

namespace {

std::string KeyDigest(const std::string& secret) {
  if (secret.empty()) return "";
  auto d = crypto::Sha256(secret);
  return std::string(crypto::AsStringView(d));
}

}  // namespace

SandboxSessions::SandboxSessions(SandboxSessionOptions options)
    : options_(std::move(options)) {}

SandboxSessions::~SandboxSessions() { Shutdown(); }

size_t SandboxSessions::active_sessions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

StatusOr<std::shared_ptr<SandboxDisk>> SandboxSessions::Acquire(
    const std::string& backup_id, const std::string& key_secret) {
  Reap();
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return absl::UnavailableError("shutting down");
    auto it = sessions_.find(backup_id);
    if (it != sessions_.end()) {
      s = it->second;
      if (!crypto::ConstantTimeEquals(s->key_digest, KeyDigest(key_secret))) {
        return absl::PermissionDeniedError(
            StrCat("backup ", backup_id, " is attached with another data key"));
      }
    } else {
      s = std::make_shared<Session>();
      s->key_digest = KeyDigest(key_secret);
      sessions_.emplace(backup_id, s);
      std::string secret = key_secret;
      s->thread = std::thread([this, s, backup_id, secret]() mutable {
        NbdExportOptions eo;
        eo.store = options_.repo_root;
        eo.backup_id = backup_id;
        eo.key_secret = secret;
        eo.lock_store = false;
        WipeSecret(&secret);
        auto exported = NbdExport::Start(eo);
        WipeSecret(&eo.key_secret);
        StatusOr<std::unique_ptr<SandboxDisk>> disk =
            exported.ok()
                ? StatusOr<std::unique_ptr<SandboxDisk>>(
                      absl::UnknownError("not opened"))
                : StatusOr<std::unique_ptr<SandboxDisk>>(exported.status());
        if (exported.ok()) {
          SandboxDiskOptions so;
          so.nbd_socket = (*exported)->socket_path();
          so.limits = options_.limits;
          disk = SandboxDisk::Open(so);
        }
        {
          std::lock_guard<std::mutex> l(s->mu);
          s->ready = true;
          if (disk.ok()) {
            s->disk = std::shared_ptr<SandboxDisk>(std::move(*disk));
          } else {
            s->status = disk.status();
          }
        }
        s->cv.notify_all();
        std::unique_lock<std::mutex> l(s->mu);
        s->cv.wait(l, [&] { return s->stop; });
        std::shared_ptr<SandboxDisk> last = std::move(s->disk);
        l.unlock();
        last.reset();  // shuts the appliance down (handles may outlive it)
        if (exported.ok()) (*exported)->Stop().IgnoreError();
      });
      spdlog::info("sandbox: attaching backup {} to a libguestfs appliance",
                   backup_id);
    }
  }
  std::unique_lock<std::mutex> l(s->mu);
  s->cv.wait(l, [&] { return s->ready; });
  if (!s->status.ok()) {
    Status failed = s->status;
    l.unlock();
    std::unique_lock<std::mutex> lock(mu_);
    auto it = sessions_.find(backup_id);
    if (it != sessions_.end() && it->second == s) StopLocked(it, &lock);
    return failed;
  }
  s->last_release = std::chrono::steady_clock::now();
  return s->disk;
}

void SandboxSessions::StopLocked(
    std::map<std::string, std::shared_ptr<Session>>::iterator it,
    std::unique_lock<std::mutex>* lock) {
  std::shared_ptr<Session> s = it->second;
  sessions_.erase(it);
  lock->unlock();
  {
    std::lock_guard<std::mutex> l(s->mu);
    s->stop = true;
  }
  s->cv.notify_all();
  if (s->thread.joinable()) s->thread.join();
  lock->lock();
}

void SandboxSessions::Reap() {
  std::unique_lock<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    std::shared_ptr<Session> s = it->second;
    bool idle = false;
    {
      std::lock_guard<std::mutex> l(s->mu);
      // In use: a caller holds the disk (the session's own reference is 1).
      idle = s->ready && (s->disk == nullptr || s->disk.use_count() == 1) &&
             now - s->last_release > options_.idle_timeout;
    }
    if (idle) {
      spdlog::info("sandbox: backup {} idle, appliance stopped", it->first);
      StopLocked(it, &lock);
      it = sessions_.begin();  // the map may have changed while unlocked
    } else {
      ++it;
    }
  }
}

void SandboxSessions::Shutdown() {
  std::unique_lock<std::mutex> lock(mu_);
  shut_down_ = true;
  while (!sessions_.empty()) StopLocked(sessions_.begin(), &lock);
}

}  // namespace cairn
