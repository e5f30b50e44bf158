#include "media_agent/mount_sessions.h"

#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <map>
#include <mutex>
#include <vector>

#include "common/crypto.h"
#include "common/manifest.h"
#include "common/strings.h"
#include "media_agent/key_handover.h"

namespace cairn {

using Clock = std::chrono::steady_clock;

struct MountSessionManager::Entry {
  enum class State { kStarting, kLive, kFailed, kStopping, kStopped };

  std::string backup_id;
  crypto::Digest key_hash{};
  // Guarded by Core::mu from here on.
  State state = State::kStarting;
  Status start_status;
  int users = 0;  // handles alive
  Clock::time_point idle_since;
  bool stop_requested = false;
  std::shared_ptr<MountSession> session;  // set once live
  std::thread owner;  // runs RunSession; moved to Core::finished at its end
};

struct MountSessionManager::Core {
  std::mutex mu;
  std::condition_variable cv;
  // Sessions not yet stopped, by backup id.
  std::map<std::string, std::shared_ptr<Entry>> entries;
  // Session threads that have finished (or are finishing) and await join.
  std::vector<std::thread> finished;
  bool shutdown = false;
  std::chrono::seconds idle_timeout{300};
};

namespace {

Status MakePrivateDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, "mkdir", dir);
  }
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return ErrnoToStatus(errno, "lstat", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        StrCat(dir, " is not a directory (symbolic links are refused)"));
  }
  if (st.st_uid != ::geteuid() || (st.st_mode & 0022) != 0) {
    return absl::FailedPreconditionError(
        StrCat("runtime directory ", dir,
               " must be owned by this user and not writable by others"));
  }
  return absl::OkStatus();
}

void JoinAll(std::vector<std::thread> threads) {
  for (std::thread& t : threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace

StatusOr<std::unique_ptr<MountSessionManager>> MountSessionManager::Create(
    const MountSessionOptions& options) {
  if (options.repo_root.empty()) {
    return absl::InvalidArgumentError("no repository given");
  }
  if (options.runtime_dir.empty()) {
    return absl::InvalidArgumentError("no runtime directory given");
  }
  if (options.idle_timeout.count() < 0) {
    return absl::InvalidArgumentError("idle_timeout must not be negative");
  }
  CAIRN_RETURN_IF_ERROR(MakePrivateDir(options.runtime_dir));
  CAIRN_ASSIGN_OR_RETURN(
      std::unique_ptr<FileLock> lock,
      Env::Default()->LockFile(JoinPath(options.runtime_dir, "lock")));
  auto cleaned = CleanStalePseudoDisks(options.runtime_dir);
  if (!cleaned.ok()) {
    spdlog::warn("mount sessions: cleaning stale sessions in {}: {}",
                 options.runtime_dir, ToStd(cleaned.status().message()));
  } else if (*cleaned > 0) {
    spdlog::warn(
        "mount sessions: removed {} stale session(s) left in {} by a previous "
        "process",
        *cleaned, options.runtime_dir);
  }
  return std::unique_ptr<MountSessionManager>(
      new MountSessionManager(options, std::move(lock)));
}

MountSessionManager::MountSessionManager(const MountSessionOptions& options,
                                         std::unique_ptr<FileLock> lock)
    : options_(options), lock_(std::move(lock)), core_(new Core()) {
  core_->idle_timeout = options.idle_timeout;
  reaper_ = std::thread([this] { ReaperLoop(); });
}

MountSessionManager::~MountSessionManager() { Shutdown(); }

void MountSessionManager::RunSession(std::shared_ptr<Core> core,
                                     std::shared_ptr<Entry> entry,
                                     MountSessionOptions options,
                                     std::string key_secret) {
  auto session = std::shared_ptr<MountSession>(new MountSession());
  session->backup_id_ = entry->backup_id;
  Status status;
  std::string templ = JoinPath(options.runtime_dir, "s-XXXXXX");
  if (::mkdtemp(templ.data()) == nullptr) {
    status = ErrnoToStatus(errno, "mkdtemp", templ);
  } else {
    session->dir_ = templ;
  }
  if (status.ok()) {
    NbdExportOptions eo;
    eo.store = options.repo_root;
    eo.backup_id = entry->backup_id;
    eo.key_secret = key_secret;
    eo.runtime_dir = session->dir_;
    eo.lock_store = false;
    eo.nbdkit_path = options.nbdkit_path;
    eo.plugin_path = options.plugin_path;
    auto started = NbdExport::Start(eo);
    WipeSecret(&eo.key_secret);
    if (started.ok()) {
      session->export_ = *std::move(started);
    } else {
      status = started.status();
    }
  }
  WipeSecret(&key_secret);
  if (status.ok()) {
    PseudoDiskOptions po;
    po.nbd_uri = session->export_->uri();
    po.dir = JoinPath(session->dir_, "disk");
    po.nbdfuse_path = options.nbdfuse_path;
    po.timeout_ms = options.mount_timeout_ms;
    auto disk = PseudoDisk::Attach(po);
    if (disk.ok()) {
      session->disk_ = *std::move(disk);
    } else {
      status = disk.status();
    }
  }

  auto stop = [&session] {
    Status s;
    if (session->disk_ != nullptr) s = session->disk_->Detach();
    if (session->export_ != nullptr) {
      Status e = session->export_->Stop();
      if (s.ok()) s = e;
    }
    if (!session->dir_.empty() && ::rmdir(session->dir_.c_str()) != 0 &&
        errno != ENOENT && s.ok()) {
      s = ErrnoToStatus(errno, "rmdir", session->dir_);
    }
    return s;
  };

  std::unique_lock<std::mutex> lock(core->mu);
  if (!status.ok()) {
    lock.unlock();
    stop().IgnoreError();
    lock.lock();
    spdlog::warn("mount sessions: backup {} could not be mounted: {}",
                 entry->backup_id, ToStd(status.message()));
    entry->state = Entry::State::kFailed;
    entry->start_status = status;
  } else {
    spdlog::info("mount sessions: backup {} mounted in {}", entry->backup_id,
                 session->dir_);
    entry->session = session;
    entry->idle_since = Clock::now();
    entry->state =
        entry->stop_requested ? Entry::State::kStopping : Entry::State::kLive;
    core->cv.notify_all();
    core->cv.wait(lock, [&] { return entry->stop_requested; });
    entry->state = Entry::State::kStopping;
    lock.unlock();
    Status stopped = stop();
    if (!stopped.ok()) {
      spdlog::warn("mount sessions: stopping backup {}: {}", entry->backup_id,
                   ToStd(stopped.message()));
    } else {
      spdlog::info("mount sessions: backup {} unmounted", entry->backup_id);
    }
    lock.lock();
    entry->state = Entry::State::kStopped;
  }
  auto it = core->entries.find(entry->backup_id);
  if (it != core->entries.end() && it->second == entry) core->entries.erase(it);
  core->finished.push_back(std::move(entry->owner));
  core->cv.notify_all();
}

std::shared_ptr<const MountSession> MountSessionManager::MakeHandle(
    const std::shared_ptr<Core>& core, const std::shared_ptr<Entry>& entry) {
  ++entry->users;
  // The deleter keeps the entry (and so the session object) alive and
  // records when the last handle went.
  return std::shared_ptr<const MountSession>(
      entry->session.get(), [core, entry](const MountSession*) {
        std::lock_guard<std::mutex> lock(core->mu);
        if (--entry->users == 0) {
          entry->idle_since = Clock::now();
          core->cv.notify_all();
        }
      });
}

StatusOr<std::shared_ptr<const MountSession>> MountSessionManager::Acquire(
    const std::string& backup_id, const std::string& key_secret) {
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(backup_id));
  if (!key_secret.empty() && key_secret.size() != 32) {
    return absl::InvalidArgumentError(
        StrCat("a data key is 32 bytes, got ", key_secret.size()));
  }
  const crypto::Digest hash = crypto::Sha256(key_secret);
  auto same_key = [&hash](const Entry& e) {
    return crypto::ConstantTimeEquals(
        std::string_view(reinterpret_cast<const char*>(hash.data()),
                         hash.size()),
        std::string_view(reinterpret_cast<const char*>(e.key_hash.data()),
                         e.key_hash.size()));
  };
  std::unique_lock<std::mutex> lock(core_->mu);
  while (true) {
    if (core_->shutdown) {
      return absl::FailedPreconditionError(
          "the mount session manager has been shut down");
    }
    auto it = core_->entries.find(backup_id);
    if (it == core_->entries.end()) {
      auto entry = std::make_shared<Entry>();
      entry->backup_id = backup_id;
      entry->key_hash = hash;
      core_->entries[backup_id] = entry;
      // Assigned under the lock: the thread takes it before touching `owner`.
      entry->owner = std::thread(&MountSessionManager::RunSession, core_, entry,
                                 options_, key_secret);
      core_->cv.wait(lock,
                     [&] { return entry->state != Entry::State::kStarting; });
      if (entry->state == Entry::State::kFailed) return entry->start_status;
      continue;  // live, or stopping at once (Shutdown): decided below
    }
    std::shared_ptr<Entry> entry = it->second;
    switch (entry->state) {
      case Entry::State::kStarting:
        core_->cv.wait(lock,
                       [&] { return entry->state != Entry::State::kStarting; });
        // A start that failed with this same key fails this call too; with
        // another key, this caller tries its own.
        if (entry->state == Entry::State::kFailed && same_key(*entry)) {
          return entry->start_status;
        }
        break;
      case Entry::State::kLive:
        if (!same_key(*entry)) {
          return absl::PermissionDeniedError(
              StrCat("backup ", backup_id,
                     " is mounted with another key; refusing to share it"));
        }
        return MakeHandle(core_, entry);
      case Entry::State::kStopping:
      case Entry::State::kFailed:
      case Entry::State::kStopped:
        core_->cv.wait(lock, [&] {
          auto now = core_->entries.find(backup_id);
          return now == core_->entries.end() || now->second != entry;
        });
        break;
    }
  }
}

void MountSessionManager::ReaperLoop() {
  std::unique_lock<std::mutex> lock(core_->mu);
  while (!core_->shutdown) {
    Clock::time_point now = Clock::now();
    Clock::time_point next = Clock::time_point::max();
    for (auto& [id, entry] : core_->entries) {
      if (entry->state != Entry::State::kLive || entry->users > 0) continue;
      Clock::time_point due = entry->idle_since + core_->idle_timeout;
      if (due <= now) {
        entry->stop_requested = true;
        entry->state = Entry::State::kStopping;  // no new handles
        spdlog::info("mount sessions: backup {} idle for {} s; stopping", id,
                     core_->idle_timeout.count());
      } else {
        next = std::min(next, due);
      }
    }
    core_->cv.notify_all();
    if (!core_->finished.empty()) {
      std::vector<std::thread> done = std::move(core_->finished);
      core_->finished.clear();
      lock.unlock();
      JoinAll(std::move(done));
      lock.lock();
      continue;
    }
    if (next == Clock::time_point::max()) {
      core_->cv.wait(lock);
    } else {
      core_->cv.wait_until(lock, next);
    }
  }
}

void MountSessionManager::ReapIdleForTest(Clock::time_point now) {
  std::unique_lock<std::mutex> lock(core_->mu);
  std::vector<std::shared_ptr<Entry>> stopping;
  for (auto& [id, entry] : core_->entries) {
    if (entry->state == Entry::State::kLive && entry->users == 0 &&
        entry->idle_since + core_->idle_timeout <= now) {
      entry->stop_requested = true;
      entry->state = Entry::State::kStopping;  // no new handles
      stopping.push_back(entry);
    }
  }
  core_->cv.notify_all();
  core_->cv.wait(lock, [&] {
    for (const auto& e : stopping) {
      if (e->state != Entry::State::kStopped) return false;
    }
    return true;
  });
}

void MountSessionManager::Shutdown() {
  std::unique_lock<std::mutex> lock(core_->mu);
  core_->shutdown = true;
  for (auto& [id, entry] : core_->entries) {
    entry->stop_requested = true;
    if (entry->state == Entry::State::kLive) {
      entry->state = Entry::State::kStopping;
    }
  }
  core_->cv.notify_all();
  core_->cv.wait(lock, [&] { return core_->entries.empty(); });
  std::vector<std::thread> done = std::move(core_->finished);
  core_->finished.clear();
  lock.unlock();
  JoinAll(std::move(done));
  if (reaper_.joinable()) reaper_.join();
}

size_t MountSessionManager::active_sessions() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->entries.size();
}

}  // namespace cairn
