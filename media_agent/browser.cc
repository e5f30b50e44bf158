#include "media_agent/browser.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "common/key_wrap.h"
#include "common/strings.h"
#include "media_agent/exported_image.h"
#include "media_agent/key_handover.h"
#include "media_agent/read_only_store.h"

namespace cairn {
namespace {

constexpr uint32_t kDefaultFindLimit = 1000;
constexpr uint32_t kMaxFindLimit = 100000;
constexpr size_t kReadPiece = 1 << 20;

// Opens `path` (normalized, absolute within the file system) below the
// mount point `root_fd` without following any symlink, without leaving the
// mount and without crossing into another mount (openat2 RESOLVE_*): the
// kernel enforces what a component-by-component walk would.
StatusOr<int> OpenBeneath(int root_fd, const std::string& path) {
  struct open_how how = {};
  how.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                RESOLVE_NO_XDEV;
  const std::string relative = path == "/" ? "." : path.substr(1);
  int fd = static_cast<int>(
      syscall(SYS_openat2, root_fd, relative.c_str(), &how, sizeof(how)));
  if (fd < 0) {
    const int e = errno;
    return absl::ErrnoToStatus(e, StrCat("opening ", path, " in the mount"));
  }
  return fd;
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// The file systems of `catalogue` without their entries.
v1::FileCatalogue Summary(const v1::FileCatalogue& catalogue) {
  v1::FileCatalogue out;
  out.set_backup_id(catalogue.backup_id());
  out.set_created_unix_us(catalogue.created_unix_us());
  for (const auto& fs : catalogue.filesystems()) {
    v1::FileSystemCatalogue* f = out.add_filesystems();
    *f = fs;
    f->clear_entries();
  }
  *out.mutable_skipped() = catalogue.skipped();
  return out;
}

std::string Describe(const v1::FileSystemCatalogue& fs) {
  return StrCat("partition ", fs.partition(), " (",
                fs.fs_type().empty() ? "unknown" : fs.fs_type(), ")");
}

}  // namespace

StatusOr<std::unique_ptr<Browser>> Browser::Create(BrowserOptions options) {
  if (options.repo_root.empty() || options.runtime_dir.empty() ||
      options.media_id.empty() || options.server_cert_pem.empty()) {
    return absl::InvalidArgumentError(
        "browser: repo_root, runtime_dir, media_id and server_cert_pem are "
        "required");
  }
  std::unique_ptr<Browser> b(new Browser(std::move(options)));
  if (b->options_.sandbox) {
    SandboxSessionOptions so;
    so.repo_root = b->options_.repo_root;
    so.idle_timeout = b->options_.idle_timeout;
    so.limits = b->options_.limits;
    b->sandbox_ = std::make_unique<SandboxSessions>(std::move(so));
  } else {
    MountSessionOptions mo;
    mo.repo_root = b->options_.repo_root;
    mo.runtime_dir = b->options_.runtime_dir;
    mo.idle_timeout = b->options_.idle_timeout;
    CAIRN_ASSIGN_OR_RETURN(b->mounts_, MountSessionManager::Create(mo));
  }
  b->worker_ = std::thread([p = b.get()] { p->WorkerLoop(); });
  return b;
}

Browser::Browser(BrowserOptions options)
    : options_(std::move(options)), store_(options_.repo_root) {}

Browser::~Browser() { Shutdown(); }

int64_t Browser::Now() const {
  if (options_.clock) return options_.clock();
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Browser::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (mounts_) mounts_->Shutdown();
  if (sandbox_) sandbox_->Shutdown();
}

size_t Browser::mount_sessions() const {
  return (mounts_ ? mounts_->active_sessions() : 0) +
         (sandbox_ ? sandbox_->active_sessions() : 0);
}

StatusOr<Browser::Access> Browser::Authorize(const std::string& caller,
                                             const std::string& ticket) {
  Access a;
  CAIRN_ASSIGN_OR_RETURN(
      a.ticket, AuthorizeTicket(ticket, options_.server_cert_pem, Now(),
                                options_.media_id, caller,
                                SessionTicket::Operation::kBrowse));
  if (!a.ticket.wrapped_key.empty()) {
    CAIRN_ASSIGN_OR_RETURN(
        std::string secret,
        UnwrapKey(a.ticket.wrapped_key, options_.media_key_pem));
    auto key = DataKey::FromSecret(secret);
    WipeSecret(&secret);
    if (!key.ok()) return key.status();
    a.key = *std::move(key);
  }
  return a;
}

std::shared_ptr<const CatalogueIndex> Browser::CachedIndex(
    const std::string& backup_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = indices_.begin(); it != indices_.end(); ++it) {
    if (it->first == backup_id) {
      indices_.splice(indices_.begin(), indices_, it);
      return indices_.front().second;
    }
  }
  return nullptr;
}

void Browser::CacheIndex(const std::string& backup_id,
                         std::shared_ptr<const CatalogueIndex> index) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(indices_,
                [&](const auto& kv) { return kv.first == backup_id; });
  indices_.emplace_front(backup_id, std::move(index));
  while (indices_.size() > kCachedCatalogues) indices_.pop_back();
}

StatusOr<std::shared_ptr<const CatalogueIndex>> Browser::IndexFor(
    const Access& access, bool rebuild, bool* built_now) {
  const std::string& id = access.ticket.backup_id;
  const DataKey* key = access.key ? &*access.key : nullptr;
  if (built_now != nullptr) *built_now = false;
  if (!rebuild) {
    if (auto cached = CachedIndex(id)) return cached;
    CAIRN_ASSIGN_OR_RETURN(bool exists, store_.Exists(id));
    if (exists) {
      CAIRN_ASSIGN_OR_RETURN(v1::FileCatalogue c, store_.Load(id, key));
      CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CatalogueIndex> index,
                             CatalogueIndex::Create(std::move(c)));
      std::shared_ptr<const CatalogueIndex> shared = std::move(index);
      CacheIndex(id, shared);
      return shared;
    }
  }
  CAIRN_ASSIGN_OR_RETURN(v1::FileCatalogue c, BuildCatalogue(id, key));
  if (built_now != nullptr) *built_now = true;
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<CatalogueIndex> index,
                         CatalogueIndex::Create(std::move(c)));
  std::shared_ptr<const CatalogueIndex> shared = std::move(index);
  CacheIndex(id, shared);
  return shared;
}

StatusOr<v1::FileCatalogue> Browser::BuildCatalogue(
    const std::string& backup_id, const DataKey* key) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (building_.count(backup_id) != 0) {
      // Someone else is building it: wait, then use what they stored (or
      // build it ourselves if they failed).
      cv_.wait(lock, [&] { return building_.count(backup_id) == 0; });
      lock.unlock();
      auto stored = store_.Load(backup_id, key);
      if (stored.ok() || !absl::IsNotFound(stored.status())) return stored;
      lock.lock();
      cv_.wait(lock, [&] { return building_.count(backup_id) == 0; });
    }
    building_.insert(backup_id);
  }
  auto done = [&] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      building_.erase(backup_id);
    }
    cv_.notify_all();
  };

  const auto started = std::chrono::steady_clock::now();
  std::string secret = key != nullptr ? key->secret() : std::string();
  v1::FileCatalogue catalogue;
  if (sandbox_) {
    auto disk = sandbox_->Acquire(backup_id, secret);
    WipeSecret(&secret);
    auto walked = disk.ok() ? (*disk)->Catalogue(backup_id)
                            : StatusOr<v1::FileCatalogue>(disk.status());
    if (!walked.ok()) {
      done();
      return walked.status();
    }
    catalogue = *std::move(walked);
    catalogue.set_created_unix_us(Now());
    Status saved = store_.Save(catalogue, key);
    done();
    CAIRN_RETURN_IF_ERROR(saved);
    spdlog::info(
        "catalogued backup {} in the sandbox: {} file system(s) in "
        "{} ms",
        backup_id, catalogue.filesystems_size(),
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started)
            .count());
    return catalogue;
  }
  auto session = mounts_->Acquire(backup_id, secret);
  WipeSecret(&secret);
  if (!session.ok()) {
    done();
    return session.status();
  }
  catalogue.set_backup_id(backup_id);
  catalogue.set_created_unix_us(Now());
  for (const MountedFileSystem& m : (*session)->disk().filesystems()) {
    FileSystemLocation where;
    where.partition = m.partition.number;
    where.offset = m.partition.offset;
    where.size = m.partition.size;
    where.fs_type = m.partition.fs_type;
    where.label = m.partition.label;
    where.uuid = m.partition.uuid;
    auto describe_only = [&](v1::FileSystemCatalogue* fs) {
      fs->set_partition(where.partition);
      fs->set_offset(where.offset);
      fs->set_size(where.size);
      fs->set_fs_type(where.fs_type);
      fs->set_label(where.label);
      fs->set_uuid(where.uuid);
    };
    if (m.mount_path.empty()) {
      v1::FileSystemCatalogue* fs = catalogue.add_skipped();
      describe_only(fs);
      fs->set_error(m.status.ok() ? "not mounted"
                                  : std::string(m.status.message()));
      continue;
    }
    auto fs = CatalogueFileSystem(m.mount_path, where, options_.limits);
    if (fs.ok()) {
      *catalogue.add_filesystems() = *std::move(fs);
    } else {
      v1::FileSystemCatalogue* f = catalogue.add_skipped();
      describe_only(f);
      f->set_error(std::string(fs.status().message()));
    }
  }
  session->reset();  // the mounts idle out unless someone browses live
  Status saved = store_.Save(catalogue, key);
  done();
  CAIRN_RETURN_IF_ERROR(saved);
  uint64_t entries = 0;
  for (const auto& fs : catalogue.filesystems()) entries += fs.entries_size();
  spdlog::info(
      "catalogued backup {}: {} file system(s), {} skipped, {} entries in "
      "{} ms",
      backup_id, catalogue.filesystems_size(), catalogue.skipped_size(),
      entries,
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - started)
          .count());
  return catalogue;
}

StatusOr<std::shared_ptr<const CatalogueIndex>> Browser::KnownIndex(
    const Access& access) {
  const std::string& id = access.ticket.backup_id;
  if (auto cached = CachedIndex(id)) return cached;
  CAIRN_ASSIGN_OR_RETURN(bool exists, store_.Exists(id));
  if (!exists) return std::shared_ptr<const CatalogueIndex>();
  return IndexFor(access);
}

StatusOr<BrowseListing> Browser::List(const std::string& caller,
                                      const std::string& ticket,
                                      std::optional<uint32_t> partition,
                                      const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(std::string normalized, NormalizeBrowsePath(path));
  CAIRN_ASSIGN_OR_RETURN(Access access, Authorize(caller, ticket));
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<const CatalogueIndex> index,
                         KnownIndex(access));
  if (index == nullptr && sandbox_) {
    // The appliance launch dominates: record the whole catalogue now.
    CAIRN_ASSIGN_OR_RETURN(index, IndexFor(access));
  }
  if (index == nullptr) {
    // A backup without a catalogue yet (just committed, or from before
    // catalogues): answer from the live mount at once, and record the
    // catalogue in the background for what comes next.
    QueueCatalogue(access.ticket.backup_id, access.ticket.wrapped_key);
    return ListLive(access, partition, normalized);
  }
  CAIRN_ASSIGN_OR_RETURN(const v1::FileSystemCatalogue* fs,
                         index->FileSystem(partition));
  CAIRN_ASSIGN_OR_RETURN(const v1::FileEntry* dir,
                         index->Lookup(*fs, normalized));
  CAIRN_ASSIGN_OR_RETURN(std::vector<const v1::FileEntry*> children,
                         index->List(*fs, normalized));
  BrowseListing out;
  out.filesystem = *fs;
  out.filesystem.clear_entries();
  out.directory = *dir;
  out.entries.reserve(children.size());
  for (const v1::FileEntry* e : children) out.entries.push_back(*e);
  return out;
}

StatusOr<BrowseListing> Browser::ListLive(const Access& access,
                                          std::optional<uint32_t> partition,
                                          const std::string& normalized) {
  std::string secret = access.key ? access.key->secret() : std::string();
  auto session = mounts_->Acquire(access.ticket.backup_id, secret);
  WipeSecret(&secret);
  CAIRN_RETURN_IF_ERROR(session.status());
  // The file system: the one asked for, else the only one mounted, else the
  // one with /etc (as CatalogueIndex::FileSystem decides).
  const MountedFileSystem* chosen = nullptr;
  std::vector<const MountedFileSystem*> mounted;
  for (const MountedFileSystem& m : (*session)->disk().filesystems()) {
    if (partition && m.partition.number == *partition) {
      if (m.mount_path.empty()) {
        return absl::FailedPreconditionError(StrCat(
            "partition ", *partition, " is not mounted: ", m.status.message()));
      }
      chosen = &m;
    }
    if (!m.mount_path.empty()) mounted.push_back(&m);
  }
  if (partition && chosen == nullptr) {
    return absl::NotFoundError(StrCat("backup ", access.ticket.backup_id,
                                      " has no partition ", *partition));
  }
  if (chosen == nullptr) {
    if (mounted.size() == 1) {
      chosen = mounted[0];
    } else {
      for (const MountedFileSystem* m : mounted) {
        struct stat st;
        if (::lstat((m->mount_path + "/etc").c_str(), &st) == 0 &&
            S_ISDIR(st.st_mode)) {
          chosen = m;
          break;
        }
      }
    }
  }
  if (chosen == nullptr) {
    return mounted.empty()
               ? absl::NotFoundError(
                     StrCat("backup ", access.ticket.backup_id,
                            " has no file system this host can read"))
               : absl::InvalidArgumentError(
                     StrCat("backup ", access.ticket.backup_id,
                            " has several file systems; name a partition"));
  }
  // The mount is read-only, so the tree cannot change between this check
  // and the walk: once `normalized` resolves beneath the mount without a
  // symlink, its string path names the same directory.
  int root = ::open(chosen->mount_path.c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0) {
    return absl::ErrnoToStatus(errno, "opening the mount of the partition");
  }
  FdCloser root_fd(root);
  {
    auto dir = OpenBeneath(root, normalized);
    if (!dir.ok()) {
      if (absl::IsNotFound(dir.status())) {
        return absl::NotFoundError(StrCat(normalized,
                                          " does not exist on partition ",
                                          chosen->partition.number));
      }
      return absl::FailedPreconditionError(
          StrCat(normalized, " on partition ", chosen->partition.number,
                 " is not a directory reachable without symlinks: ",
                 dir.status().message()));
    }
    FdCloser fd(*dir);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(StrCat(normalized, " on partition ",
                                                  chosen->partition.number,
                                                  " is not a directory"));
    }
  }
  FileSystemLocation where;
  where.partition = chosen->partition.number;
  where.offset = chosen->partition.offset;
  where.size = chosen->partition.size;
  where.fs_type = chosen->partition.fs_type;
  where.label = chosen->partition.label;
  where.uuid = chosen->partition.uuid;
  CatalogueLimits one_level = options_.limits;
  one_level.max_depth = 1;
  const std::string dir_path =
      normalized == "/" ? chosen->mount_path : chosen->mount_path + normalized;
  CAIRN_ASSIGN_OR_RETURN(v1::FileSystemCatalogue level,
                         CatalogueFileSystem(dir_path, where, one_level));
  BrowseListing out;
  out.from_catalogue = false;
  for (int i = 0; i < level.entries_size(); ++i) {
    v1::FileEntry e = level.entries(i);
    // Paths relative to the listed directory: make them absolute again.
    e.set_path(normalized == "/" ? e.path()
               : e.path() == "/" ? normalized
                                 : normalized + e.path());
    if (i == 0) {
      out.directory = std::move(e);
    } else {
      out.entries.push_back(std::move(e));
    }
  }
  level.clear_entries();
  out.filesystem = std::move(level);
  return out;
}

StatusOr<BrowseMatches> Browser::Find(const std::string& caller,
                                      const std::string& ticket,
                                      const std::string& pattern,
                                      std::optional<uint32_t> partition,
                                      uint32_t limit) {
  if (pattern.empty() || pattern.size() > 4096 ||
      pattern.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        "a search pattern has 1-4096 bytes and no NUL");
  }
  if (limit == 0) limit = kDefaultFindLimit;
  if (limit > kMaxFindLimit) {
    return absl::InvalidArgumentError(
        StrCat("a search returns at most ", kMaxFindLimit, " matches"));
  }
  CAIRN_ASSIGN_OR_RETURN(Access access, Authorize(caller, ticket));
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<const CatalogueIndex> index,
                         IndexFor(access));
  if (partition) {
    CAIRN_RETURN_IF_ERROR(index->FileSystem(partition).status());
  }
  BrowseMatches out;
  for (const auto& [part, entry] :
       index->Find(pattern, partition, limit, &out.truncated)) {
    out.matches.emplace_back(part, *entry);
  }
  return out;
}

Status Browser::Read(
    const std::string& caller, const std::string& ticket,
    std::optional<uint32_t> partition, const std::string& path, uint64_t offset,
    uint64_t length,
    const std::function<Status(const v1::FileEntry&)>& on_entry,
    const std::function<Status(std::string_view)>& on_data) {
  CAIRN_ASSIGN_OR_RETURN(std::string normalized, NormalizeBrowsePath(path));
  CAIRN_ASSIGN_OR_RETURN(Access access, Authorize(caller, ticket));
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<const CatalogueIndex> index,
                         IndexFor(access));
  CAIRN_ASSIGN_OR_RETURN(const v1::FileSystemCatalogue* fs,
                         index->FileSystem(partition));
  CAIRN_ASSIGN_OR_RETURN(const v1::FileEntry* entry,
                         index->Lookup(*fs, normalized));
  switch (entry->type()) {
    case v1::FileEntry::REGULAR:
      break;
    case v1::FileEntry::SYMLINK:
      return absl::FailedPreconditionError(
          StrCat(normalized, " on ", Describe(*fs), " is a symlink to '",
                 entry->symlink_target(), "'; symlinks are not followed"));
    case v1::FileEntry::DIRECTORY:
      return absl::FailedPreconditionError(
          StrCat(normalized, " on ", Describe(*fs),
                 " is a directory; read its files one by one"));
    default:
      return absl::FailedPreconditionError(
          StrCat(normalized, " on ", Describe(*fs),
                 " is not a regular file; it has no content to read"));
  }
  if (offset > entry->size()) {
    return absl::OutOfRangeError(StrCat("offset ", offset,
                                        " is past the end of ", normalized,
                                        " (", entry->size(), " bytes)"));
  }
  CAIRN_RETURN_IF_ERROR(on_entry(*entry));
  if (entry->extents_complete()) {
    return ReadThroughExtents(access, *entry, offset, length, on_data);
  }
  if (sandbox_) {
    return ReadThroughSandbox(access, *fs, *entry, offset, length, on_data);
  }
  return ReadThroughMount(access, *fs, *entry, offset, length, on_data);
}

Status Browser::ReadThroughExtents(
    const Access& access, const v1::FileEntry& entry, uint64_t offset,
    uint64_t length, const std::function<Status(std::string_view)>& on_data) {
  CAIRN_ASSIGN_OR_RETURN(
      std::unique_ptr<ReadOnlyStore> source,
      ReadOnlyStore::Open(options_.repo_root, Env::Default()));
  std::unique_ptr<DataKey> key;
  if (access.key) key = std::make_unique<DataKey>(*access.key);
  CAIRN_ASSIGN_OR_RETURN(
      std::unique_ptr<ExportedImage> image,
      ExportedImage::Open(std::move(source), std::move(key),
                          access.ticket.backup_id, 64ull << 20));
  return ReadFileFromExtents(image.get(), entry, offset, length, on_data,
                             kReadPiece);
}

Status Browser::ReadThroughSandbox(
    const Access& access, const v1::FileSystemCatalogue& fs,
    const v1::FileEntry& entry, uint64_t offset, uint64_t length,
    const std::function<Status(std::string_view)>& on_data) {
  std::string secret = access.key ? access.key->secret() : std::string();
  auto disk = sandbox_->Acquire(access.ticket.backup_id, secret);
  WipeSecret(&secret);
  CAIRN_RETURN_IF_ERROR(disk.status());
  return (*disk)->Read(fs.partition(), entry.path(), offset, length, on_data);
}

Status Browser::ReadThroughMount(
    const Access& access, const v1::FileSystemCatalogue& fs,
    const v1::FileEntry& entry, uint64_t offset, uint64_t length,
    const std::function<Status(std::string_view)>& on_data) {
  std::string secret = access.key ? access.key->secret() : std::string();
  auto session = mounts_->Acquire(access.ticket.backup_id, secret);
  WipeSecret(&secret);
  CAIRN_RETURN_IF_ERROR(session.status());
  std::string mount_path;
  for (const MountedFileSystem& m : (*session)->disk().filesystems()) {
    if (m.partition.number == fs.partition()) {
      if (m.mount_path.empty()) {
        return absl::FailedPreconditionError(
            StrCat(Describe(fs), " is not mounted: ", m.status.message()));
      }
      mount_path = m.mount_path;
    }
  }
  if (mount_path.empty()) {
    return absl::NotFoundError(
        StrCat(Describe(fs), " is not in the attached image"));
  }
  int root = ::open(mount_path.c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0) {
    return absl::ErrnoToStatus(errno,
                               StrCat("opening the mount of ", Describe(fs)));
  }
  FdCloser root_fd(root);
  CAIRN_ASSIGN_OR_RETURN(int fd_raw, OpenBeneath(root, entry.path()));
  FdCloser fd(fd_raw);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        StrCat(entry.path(), " on ", Describe(fs),
               " is no longer a regular file in the mounted image"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  uint64_t end = length == 0 ? size : std::min(size, offset + length);
  std::string buf(kReadPiece, '\0');
  for (uint64_t pos = offset; pos < end;) {
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(kReadPiece, end - pos));
    ssize_t n = ::pread(fd.get(), buf.data(), want, static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(
          errno, StrCat("reading ", entry.path(), " on ", Describe(fs)));
    }
    if (n == 0) {
      return absl::DataLossError(StrCat(entry.path(), " on ", Describe(fs),
                                        " ended early at byte ", pos));
    }
    CAIRN_RETURN_IF_ERROR(on_data(std::string_view(buf.data(), n)));
    pos += static_cast<uint64_t>(n);
  }
  return Status();
}

StatusOr<v1::FileCatalogue> Browser::Catalogue(const std::string& caller,
                                               const std::string& ticket,
                                               bool rebuild, bool* built_now) {
  CAIRN_ASSIGN_OR_RETURN(Access access, Authorize(caller, ticket));
  CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<const CatalogueIndex> index,
                         IndexFor(access, rebuild, built_now));
  return Summary(index->catalogue());
}

void Browser::OnBackupCommitted(const SessionTicket& ticket) {
  if (!options_.catalogue_after_backup) return;
  QueueCatalogue(ticket.backup_id, ticket.wrapped_key);
}

void Browser::QueueCatalogue(const std::string& backup_id,
                             const std::string& wrapped_key) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || building_.count(backup_id) != 0) return;
    for (const auto& [id, key] : queue_) {
      if (id == backup_id) return;
    }
    queue_.emplace_back(backup_id, wrapped_key);
  }
  cv_.notify_all();
}

void Browser::WaitForCatalogues() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] {
    return (queue_.empty() && !worker_busy_ && building_.empty()) || stopping_;
  });
}

void Browser::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    auto [backup_id, wrapped] = std::move(queue_.front());
    queue_.pop_front();
    worker_busy_ = true;
    lock.unlock();

    Status s;
    std::optional<DataKey> key;
    if (!wrapped.empty()) {
      auto secret = UnwrapKey(wrapped, options_.media_key_pem);
      if (secret.ok()) {
        auto k = DataKey::FromSecret(*secret);
        WipeSecret(&*secret);
        if (k.ok()) {
          key = *std::move(k);
        } else {
          s = k.status();
        }
      } else {
        s = secret.status();
      }
    }
    if (s.ok()) {
      auto built = BuildCatalogue(backup_id, key ? &*key : nullptr);
      s = built.status();
    }
    if (!s.ok()) {
      spdlog::warn("no file catalogue for backup {}: {}", backup_id,
                   ToStd(s.message()));
    }

    lock.lock();
    worker_busy_ = false;
    cv_.notify_all();
  }
}

}  // namespace cairn
