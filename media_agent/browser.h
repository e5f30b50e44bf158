// Browser: the media agent's file-level view of its backups (DESIGN.md
// section 6, docs/browse.md) - the domain service behind BrowseService
// (proto/cairn/v1/browse.proto). It knows nothing of gRPC: handlers pass the
// caller's verified identity and the request's signed ticket.
//
// Two ways to a backup's files:
//  - the file catalogue (media_agent/file_catalogue.h), recorded after each
//    backup and stored with it (media_agent/catalogue_store.h). Listing and
//    searching use only the catalogue; a file whose extents the catalogue
//    holds is read straight from the chunk store (ExportedImage), with no
//    mount;
//  - the pseudo-disk (media_agent/mount_sessions.h): the backup exported by
//    nbdkit, attached through nbdfuse and read-only loop devices, each file
//    system mounted read-only on this host. It records the catalogue (after a
//    backup, or on first use of a backup without one) and reads files whose
//    extents are not known (inline, compressed, vfat).
//
// Authorization: every call's ticket must verify against the server
// certificate, be for this media agent, name the caller, and allow BROWSE.
// The data key of an encrypted backup comes wrapped in the ticket for this
// media agent's key (common/key_wrap.h); it is unwrapped per call, held in
// memory only while needed, and never written anywhere.
//
// Read-only throughout: the NBD export is read-only, loop devices are
// read-only, mounts are read-only without journal replay, and nothing under
// the repository is written except the catalogue file.
//
// Thread safety: thread-safe.
#ifndef CAIRN_MEDIA_AGENT_BROWSER_H_
#define CAIRN_MEDIA_AGENT_BROWSER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cairn/v1/browse.pb.h"
#include "common/data_key.h"
#include "common/session_ticket.h"
#include "common/status.h"
#include "media_agent/catalogue_store.h"
#include "media_agent/file_catalogue.h"
#include "media_agent/mount_sessions.h"
#include "media_agent/sandbox_sessions.h"

namespace cairn {

struct BrowserOptions {
  std::string repo_root;        // the repository (the caller holds its lock)
  std::string media_id;         // tickets must name it
  std::string server_cert_pem;  // verifies tickets
  // This media agent's certificate key (PEM): opens wrapped data keys.
  std::string media_key_pem;
  // Parent of mount session directories (required; created 0700). Keep it
  // stable across restarts: what a crash left there is cleaned at Create.
  std::string runtime_dir;
  std::chrono::seconds idle_timeout{300};
  CatalogueLimits limits;
  // Record a catalogue after every committed backup (OnBackupCommitted).
  bool catalogue_after_backup = true;
  // The sandboxed path: catalogues and reads inside a libguestfs appliance
  // (media_agent/sandbox_sessions.h), never a mount on this host's kernel.
  // Slower (an appliance launch per backup, no extents: every read goes
  // through the appliance), for images nobody should mount on the host.
  bool sandbox = false;
  // Microseconds since the epoch; empty: the system clock.
  std::function<int64_t()> clock;
};

struct BrowseListing {
  v1::FileSystemCatalogue filesystem;  // without entries
  v1::FileEntry directory;
  std::vector<v1::FileEntry> entries;  // sorted by name
  bool from_catalogue = true;
};

struct BrowseMatches {
  std::vector<std::pair<uint32_t, v1::FileEntry>> matches;
  bool truncated = false;
};

class Browser {
 public:
  static StatusOr<std::unique_ptr<Browser>> Create(BrowserOptions options);
  ~Browser();  // Shutdown()
  Browser(const Browser&) = delete;
  Browser& operator=(const Browser&) = delete;

  // The children of `path` in a file system of the ticket's backup. From
  // the catalogue when there is one; otherwise from the live mount (at once,
  // from_catalogue false) while the catalogue is recorded in the background.
  // InvalidArgument for a traversing or malformed path; NotFound for a
  // missing path or partition; FailedPrecondition if it is not a directory.
  StatusOr<BrowseListing> List(const std::string& caller,
                               const std::string& ticket,
                               std::optional<uint32_t> partition,
                               const std::string& path);

  // Files whose name (pattern without '/') or path (with '/') matches the
  // fnmatch(3) `pattern`. `limit` 0 means 1000; at most 100000.
  StatusOr<BrowseMatches> Find(const std::string& caller,
                               const std::string& ticket,
                               const std::string& pattern,
                               std::optional<uint32_t> partition,
                               uint32_t limit);

  // Streams [offset, offset + length) of the regular file at `path`
  // (length 0: to the end): `on_entry` once with the file's entry, then
  // `on_data` with the bytes in order (pieces of at most 1 MiB). A symlink
  // is not followed (FailedPrecondition naming its target); a directory is
  // FailedPrecondition. An error from a callback ends the read with it.
  Status Read(const std::string& caller, const std::string& ticket,
              std::optional<uint32_t> partition, const std::string& path,
              uint64_t offset, uint64_t length,
              const std::function<Status(const v1::FileEntry&)>& on_entry,
              const std::function<Status(std::string_view)>& on_data);

  // The catalogue's summary (file systems without entries), building it
  // first when missing or `rebuild`. *built_now tells which.
  StatusOr<v1::FileCatalogue> Catalogue(const std::string& caller,
                                        const std::string& ticket, bool rebuild,
                                        bool* built_now);

  // A backup was committed under `ticket` (already verified by the data
  // path): records its catalogue in the background, with the key the ticket
  // carries. Never blocks; failures are logged.
  void OnBackupCommitted(const SessionTicket& ticket);

  // Waits until no catalogue build is queued or running (tests, shutdown).
  void WaitForCatalogues();

  // Stops the catalogue worker and every mount session. Idempotent.
  void Shutdown();

  // For tests and metrics.
  size_t mount_sessions() const;

 private:
  struct Access {
    SessionTicket ticket;
    std::optional<DataKey> key;
  };
  explicit Browser(BrowserOptions options);

  StatusOr<Access> Authorize(const std::string& caller,
                             const std::string& ticket);
  // The backup's catalogue index: cached, else loaded, else built now.
  StatusOr<std::shared_ptr<const CatalogueIndex>> IndexFor(
      const Access& access, bool rebuild = false, bool* built_now = nullptr);
  // The cached or stored catalogue's index; null when the backup has none
  // yet (nothing is built).
  StatusOr<std::shared_ptr<const CatalogueIndex>> KnownIndex(
      const Access& access);
  // One directory read from the backup's mounted file system.
  StatusOr<BrowseListing> ListLive(const Access& access,
                                   std::optional<uint32_t> partition,
                                   const std::string& normalized);
  // Queues a background catalogue build unless one is queued or running.
  void QueueCatalogue(const std::string& backup_id,
                      const std::string& wrapped_key);
  // Mounts the backup, walks every file system, stores the catalogue.
  // Serialized per backup: a second caller waits for the first's result.
  StatusOr<v1::FileCatalogue> BuildCatalogue(const std::string& backup_id,
                                             const DataKey* key);
  Status ReadThroughMount(
      const Access& access, const v1::FileSystemCatalogue& fs,
      const v1::FileEntry& entry, uint64_t offset, uint64_t length,
      const std::function<Status(std::string_view)>& on_data);
  Status ReadThroughSandbox(
      const Access& access, const v1::FileSystemCatalogue& fs,
      const v1::FileEntry& entry, uint64_t offset, uint64_t length,
      const std::function<Status(std::string_view)>& on_data);
  Status ReadThroughExtents(
      const Access& access, const v1::FileEntry& entry, uint64_t offset,
      uint64_t length, const std::function<Status(std::string_view)>& on_data);
  // The loaded index of `backup_id` (made most recently used), or null.
  std::shared_ptr<const CatalogueIndex> CachedIndex(
      const std::string& backup_id);
  void CacheIndex(const std::string& backup_id,
                  std::shared_ptr<const CatalogueIndex> index);
  void WorkerLoop();
  int64_t Now() const;

  const BrowserOptions options_;
  CatalogueStore store_;
  std::unique_ptr<MountSessionManager> mounts_;  // host path; null in sandbox
  std::unique_ptr<SandboxSessions> sandbox_;     // sandbox path; else null

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Loaded catalogue indices, most recently used first. Guarded by mu_.
  std::list<std::pair<std::string, std::shared_ptr<const CatalogueIndex>>>
      indices_;
  std::set<std::string> building_;  // backups being catalogued; mu_
  // Queued after-backup builds: backup id and wrapped key. Guarded by mu_.
  std::deque<std::pair<std::string, std::string>> queue_;
  bool worker_busy_ = false;  // guarded by mu_
  bool stopping_ = false;     // guarded by mu_
  std::thread worker_;
};

// The most catalogues Browser keeps loaded in memory.
inline constexpr size_t kCachedCatalogues = 8;

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_BROWSER_H_
