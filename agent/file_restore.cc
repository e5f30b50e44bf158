#include "agent/file_restore.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <utility>
#include <vector>

#include "common/coding.h"
#include "common/crypto.h"
#include "common/paths.h"
#include "common/strings.h"

namespace cairn {
namespace {

constexpr size_t kMaxNameBytes = 255;
constexpr int kMaxDepth = 4096;
constexpr int kTempAttempts = 16;
constexpr std::string_view kTempPrefix = ".cairn-restore-";

using Type = BackupFileEntry::Type;

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Status Errno(int e, std::string_view what) {
  return absl::ErrnoToStatus(e, absl::string_view(what.data(), what.size()));
}

// The name of `child` as listed in the directory `dir`: DataLoss unless
// `child` is `dir` plus one safe component.
StatusOr<std::string> ChildName(const std::string& dir,
                                const std::string& child) {
  const std::string prefix = dir == "/" ? dir : dir + "/";
  if (child.size() < prefix.size() ||
      child.compare(0, prefix.size(), prefix) != 0) {
    return absl::DataLossError(StrCat("refusing '", child.substr(0, 256),
                                      "', listed in ", dir,
                                      " but not inside it (path traversal)"));
  }
  std::string name = child.substr(prefix.size());
  if (name.empty() || name == "." || name == ".." ||
      name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return absl::DataLossError(StrCat("refusing the unsafe name '",
                                      name.substr(0, 256), "' listed in ", dir,
                                      " (path traversal)"));
  }
  if (name.size() > kMaxNameBytes) {
    return absl::DataLossError(StrCat("refusing a name of ", name.size(),
                                      " bytes listed in ", dir, " (at most ",
                                      kMaxNameBytes, ")"));
  }
  return name;
}

struct timespec ToTimespec(int64_t ns) {
  int64_t sec = ns / 1'000'000'000;
  int64_t rem = ns % 1'000'000'000;
  if (rem < 0) {
    rem += 1'000'000'000;
    --sec;
  }
  struct timespec t;
  t.tv_sec = static_cast<time_t>(sec);
  t.tv_nsec = static_cast<long>(rem);
  return t;
}

std::string NewTempName() {
  return StrCat(kTempPrefix, HexEncode(crypto::RandomString(8)));
}

// openat2 is missing (ENOSYS) in this process's kernel or sandbox.
std::atomic<bool> openat2_missing{false};

struct PlannedEntry {
  BackupFileEntry entry;
  std::string rel;    // below the restored item ("" for the item itself)
  std::string name;   // last component of `rel`
  size_t parent = 0;  // index of its directory (unused for the top)
  int depth = 0;
};

// One Restore call: the plan, then the writes.
class RestoreRun {
 public:
  RestoreRun(BackupFileSource* source, const FileRestoreOptions& options,
             bool restore_owner)
      : source_(source), options_(options), restore_owner_(restore_owner) {}

  Status Plan(const std::vector<std::string>& source_parts);
  Status Write(const std::vector<std::string>& target_parts);
  const FileRestoreStats& stats() const { return stats_; }

 private:
  Status CheckCancelled() const {
    if (options_.cancel != nullptr && options_.cancel->cancelled()) {
      return JobCancelledStatus();
    }
    return Status();
  }
  std::string Display(const PlannedEntry& p) const {
    return p.rel.empty() ? target_ : StrCat(target_, "/", p.rel);
  }
  Status WriteTree(int parent_fd, const std::string& name);
  StatusOr<Fd> OpenDirectoryBeneath(int root_fd, const std::string& rel,
                                    const std::string& display) const;
  Status MakeDirectoryAt(int dir_fd, const std::string& name,
                         const std::string& display);
  Status WriteFileAt(int dir_fd, const std::string& name,
                     const BackupFileEntry& entry, const std::string& display);
  Status SymlinkAt(int dir_fd, const std::string& name,
                   const BackupFileEntry& entry, const std::string& display);
  Status ApplyMetadata(int fd, const BackupFileEntry& entry,
                       const std::string& display) const;

  BackupFileSource* const source_;
  const FileRestoreOptions& options_;
  const bool restore_owner_;
  std::vector<PlannedEntry> entries_;  // parents before children
  std::shared_ptr<ProgressCounter> counter_;
  std::string target_;  // for messages
  FileRestoreStats stats_;
};

Status RestoreRun::Plan(const std::vector<std::string>& source_parts) {
  const std::string source =
      JoinAbsolutePath(source_parts, source_parts.size());
  BackupFileEntry top;
  if (source_parts.empty()) {
    CAIRN_ASSIGN_OR_RETURN(BackupDirectoryListing listing, source_->List("/"));
    top = std::move(listing.directory);
    top.path = "/";
    if (top.type != Type::kDirectory) {
      return absl::DataLossError("the backup's root is not a directory");
    }
  } else {
    const std::string parent =
        JoinAbsolutePath(source_parts, source_parts.size() - 1);
    auto listing = source_->List(parent);
    if (absl::IsNotFound(listing.status()) ||
        absl::IsFailedPrecondition(listing.status())) {
      return absl::NotFoundError(StrCat(source, " is not in the backup (",
                                        ToStd(listing.status().message()),
                                        ")"));
    }
    CAIRN_RETURN_IF_ERROR(listing.status());
    bool found = false;
    for (BackupFileEntry& e : listing->entries) {
      if (e.path == source) {
        top = std::move(e);
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::NotFoundError(StrCat(source, " is not in the backup"));
    }
  }
  if (top.type == Type::kOther) {
    return absl::FailedPreconditionError(
        StrCat(source,
               " is not a regular file, symlink or directory; it cannot be "
               "restored"));
  }
  entries_.push_back({std::move(top), "", "", 0, 0});
  if (entries_[0].entry.type == Type::kDirectory) {
    std::vector<size_t> pending = {0};
    while (!pending.empty()) {
      CAIRN_RETURN_IF_ERROR(CheckCancelled());
      const size_t index = pending.back();
      pending.pop_back();
      // Copies: entries_ grows below.
      const std::string dir = entries_[index].entry.path;
      const std::string dir_rel = entries_[index].rel;
      const int depth = entries_[index].depth;
      if (depth >= kMaxDepth) {
        return absl::ResourceExhaustedError(StrCat(
            dir, " is nested more than ", kMaxDepth, " directories deep"));
      }
      CAIRN_ASSIGN_OR_RETURN(BackupDirectoryListing listing,
                             source_->List(dir));
      const size_t first_child = entries_.size();
      for (BackupFileEntry& e : listing.entries) {
        CAIRN_ASSIGN_OR_RETURN(std::string name, ChildName(dir, e.path));
        if (entries_.size() >= options_.max_entries) {
          return absl::ResourceExhaustedError(
              StrCat(source, " holds more than ", options_.max_entries,
                     " entries; restore it in parts"));
        }
        std::string rel = dir_rel.empty() ? name : StrCat(dir_rel, "/", name);
        entries_.push_back(
            {std::move(e), std::move(rel), std::move(name), index, depth + 1});
      }
      // Visit subdirectories in listing order.
      for (size_t k = entries_.size(); k-- > first_child;) {
        if (entries_[k].entry.type == Type::kDirectory) pending.push_back(k);
      }
    }
  }
  uint64_t total = 0;
  for (const PlannedEntry& p : entries_) {
    if (p.entry.type == Type::kRegular) total += p.entry.size;
  }
  counter_ = std::make_shared<ProgressCounter>(total);
  if (options_.on_started) options_.on_started(counter_);
  return Status();
}

Status RestoreRun::Write(const std::vector<std::string>& target_parts) {
  const std::string parent_dir =
      JoinAbsolutePath(target_parts, target_parts.size() - 1);
  const std::string& name = target_parts.back();
  target_ = JoinAbsolutePath(target_parts, target_parts.size());
  Fd parent(::open(parent_dir.c_str(),
                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (parent.get() < 0) {
    const int e = errno;
    struct stat st;
    if (::lstat(parent_dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      return absl::FailedPreconditionError(
          StrCat("the destination's parent ", parent_dir,
                 " is a symlink; name a real directory (symlinks are never "
                 "followed)"));
    }
    if (e == ENOENT) {
      return absl::NotFoundError(StrCat("the destination's parent directory ",
                                        parent_dir, " does not exist"));
    }
    if (e == ENOTDIR) {
      return absl::FailedPreconditionError(StrCat(
          "the destination's parent ", parent_dir, " is not a directory"));
    }
    return Errno(e, StrCat("opening ", parent_dir));
  }
  CAIRN_RETURN_IF_ERROR(CheckCancelled());
  const PlannedEntry& top = entries_[0];
  switch (top.entry.type) {
    case Type::kRegular:
      CAIRN_RETURN_IF_ERROR(
          WriteFileAt(parent.get(), name, top.entry, target_));
      break;
    case Type::kSymlink:
      CAIRN_RETURN_IF_ERROR(SymlinkAt(parent.get(), name, top.entry, target_));
      break;
    case Type::kDirectory:
      CAIRN_RETURN_IF_ERROR(WriteTree(parent.get(), name));
      break;
    case Type::kOther:
      return absl::InternalError("planned an unrestorable entry");
  }
  if (::fsync(parent.get()) != 0) {
    return Errno(errno, StrCat("syncing ", parent_dir));
  }
  return Status();
}

Status RestoreRun::WriteTree(int parent_fd, const std::string& name) {
  CAIRN_RETURN_IF_ERROR(MakeDirectoryAt(parent_fd, name, target_));
  CAIRN_ASSIGN_OR_RETURN(Fd top,
                         OpenDirectoryBeneath(parent_fd, name, target_));
  ++stats_.directories;
  // Contents, parents before children. Siblings are adjacent in entries_,
  // so their directory stays open while they are written.
  Fd dir;
  size_t dir_index = 0;
  bool dir_open = false;
  for (size_t i = 1; i < entries_.size(); ++i) {
    CAIRN_RETURN_IF_ERROR(CheckCancelled());
    const PlannedEntry& p = entries_[i];
    if (!dir_open || dir_index != p.parent) {
      dir.Reset();
      const PlannedEntry& d = entries_[p.parent];
      CAIRN_ASSIGN_OR_RETURN(
          dir, OpenDirectoryBeneath(top.get(), d.rel, Display(d)));
      dir_index = p.parent;
      dir_open = true;
    }
    switch (p.entry.type) {
      case Type::kRegular:
        CAIRN_RETURN_IF_ERROR(
            WriteFileAt(dir.get(), p.name, p.entry, Display(p)));
        break;
      case Type::kSymlink:
        CAIRN_RETURN_IF_ERROR(
            SymlinkAt(dir.get(), p.name, p.entry, Display(p)));
        break;
      case Type::kDirectory:
        CAIRN_RETURN_IF_ERROR(MakeDirectoryAt(dir.get(), p.name, Display(p)));
        ++stats_.directories;
        break;
      case Type::kOther:
        ++stats_.skipped;
        break;
    }
  }
  dir.Reset();
  // Directory metadata after the contents, deepest first (a directory's
  // descendants come after it in entries_).
  for (size_t i = entries_.size(); i-- > 0;) {
    const PlannedEntry& p = entries_[i];
    if (p.entry.type != Type::kDirectory) continue;
    CAIRN_RETURN_IF_ERROR(CheckCancelled());
    Fd opened;
    int fd = top.get();
    if (i != 0) {
      CAIRN_ASSIGN_OR_RETURN(
          opened, OpenDirectoryBeneath(top.get(), p.rel, Display(p)));
      fd = opened.get();
    }
    CAIRN_RETURN_IF_ERROR(ApplyMetadata(fd, p.entry, Display(p)));
    if (::fsync(fd) != 0) return Errno(errno, StrCat("syncing ", Display(p)));
  }
  return Status();
}

StatusOr<Fd> RestoreRun::OpenDirectoryBeneath(
    int root_fd, const std::string& rel, const std::string& display) const {
  auto failed = [&](int e) -> Status {
    if (e == ELOOP || e == ENOTDIR) {
      return absl::FailedPreconditionError(
          StrCat(display,
                 " is no longer a directory (a symlink or file took its "
                 "place during the restore; it was not followed)"));
    }
    if (e == EXDEV) {
      return absl::PermissionDeniedError(
          StrCat(display, " resolves outside the destination"));
    }
    return Errno(e, StrCat("opening ", display));
  };
  if (rel.empty()) {
    Fd fd(::fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
    if (fd.get() < 0) return Errno(errno, StrCat("opening ", display));
    return fd;
  }
  if (!options_.force_component_walk && rel.size() < PATH_MAX &&
      !openat2_missing.load(std::memory_order_relaxed)) {
    struct open_how how = {};
    how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    const long fd =
        ::syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof(how));
    if (fd >= 0) return Fd(static_cast<int>(fd));
    const int e = errno;
    if (e != ENOSYS) return failed(e);
    openat2_missing.store(true, std::memory_order_relaxed);
  }
  // Component by component, never following a symlink.
  Fd current(::fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (current.get() < 0) return Errno(errno, StrCat("opening ", display));
  size_t start = 0;
  while (start < rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    const std::string part = rel.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(
          StrCat("refusing the path component '", part, "' in ", display));
    }
    Fd next(::openat(current.get(), part.c_str(),
                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0) return failed(errno);
    current = std::move(next);
    start = end + 1;
  }
  return current;
}

Status RestoreRun::MakeDirectoryAt(int dir_fd, const std::string& name,
                                   const std::string& display) {
  if (::mkdirat(dir_fd, name.c_str(), 0700) == 0) return Status();
  int e = errno;
  if (e != EEXIST) return Errno(e, StrCat("creating the directory ", display));
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno(errno, StrCat("inspecting ", display));
  }
  if (S_ISDIR(st.st_mode)) {
    // Restored into. Its final mode comes after its contents; until then
    // the owner needs to write and search it (a 0555 directory of an
    // earlier restore, for one). Through a descriptor opened without
    // following, so a symlink swapped in meanwhile is not chmod-ed.
    if ((st.st_mode & 0700) == 0700) return Status();
    Fd fd(::openat(dir_fd, name.c_str(),
                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0 || ::fchmod(fd.get(), (st.st_mode & 07777) | 0700) != 0) {
      return Errno(errno, StrCat("making ", display, " writable"));
    }
    return Status();
  }
  // A file or symlink where the backup has a directory: removed (unlinkat
  // removes a symlink itself, never what it points to).
  if (::unlinkat(dir_fd, name.c_str(), 0) != 0) {
    return Errno(errno, StrCat("replacing ", display, " with a directory"));
  }
  if (::mkdirat(dir_fd, name.c_str(), 0700) != 0) {
    return Errno(errno, StrCat("creating the directory ", display));
  }
  return Status();
}

Status RestoreRun::ApplyMetadata(int fd, const BackupFileEntry& entry,
                                 const std::string& display) const {
  if (restore_owner_ && ::fchown(fd, entry.uid, entry.gid) != 0) {
    return Errno(errno, StrCat("setting the owner of ", display));
  }
  // After fchown, which clears setuid and setgid bits.
  if (::fchmod(fd, entry.mode & 07777) != 0) {
    return Errno(errno, StrCat("setting the mode of ", display));
  }
  const struct timespec times[2] = {ToTimespec(entry.atime_ns),
                                    ToTimespec(entry.mtime_ns)};
  if (::futimens(fd, times) != 0) {
    return Errno(errno, StrCat("setting the times of ", display));
  }
  return Status();
}

Status RestoreRun::WriteFileAt(int dir_fd, const std::string& name,
                               const BackupFileEntry& entry,
                               const std::string& display) {
  std::string tmp;
  Fd fd;
  for (int attempt = 0; attempt < kTempAttempts && fd.get() < 0; ++attempt) {
    tmp = NewTempName();
    fd = Fd(::openat(dir_fd, tmp.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     0600));
    if (fd.get() < 0 && errno != EEXIST) {
      return Errno(errno, StrCat("creating a temporary file for ", display));
    }
  }
  if (fd.get() < 0) {
    return absl::AlreadyExistsError(
        StrCat("no free temporary name for ", display));
  }
  uint64_t written = 0;
  bool have_entry = false;
  Status s = source_->Read(
      entry.path,
      [&](const BackupFileEntry& now) -> Status {
        have_entry = true;
        if (now.type != Type::kRegular) {
          return absl::DataLossError(
              StrCat(entry.path,
                     " was listed as a regular file but read as another "
                     "type"));
        }
        if (now.size != entry.size) {
          return absl::DataLossError(StrCat(entry.path, " was listed with ",
                                            entry.size, " bytes but read with ",
                                            now.size));
        }
        return Status();
      },
      [&](std::string_view data) -> Status {
        CAIRN_RETURN_IF_ERROR(CheckCancelled());
        if (!have_entry) {
          return absl::DataLossError(
              StrCat(entry.path, ": data arrived before the file's entry"));
        }
        if (data.size() > entry.size - written) {
          return absl::DataLossError(StrCat(entry.path,
                                            ": the backup sent more than its ",
                                            entry.size, " bytes"));
        }
        while (!data.empty()) {
          ssize_t n = ::write(fd.get(), data.data(), data.size());
          if (n < 0) {
            if (errno == EINTR) continue;
            return Errno(errno, StrCat("writing ", display));
          }
          data.remove_prefix(static_cast<size_t>(n));
          written += static_cast<uint64_t>(n);
          counter_->Add(static_cast<uint64_t>(n));
        }
        return Status();
      });
  if (s.ok() && !have_entry) {
    s = absl::DataLossError(StrCat(entry.path, ": the read sent no entry"));
  }
  if (s.ok() && written != entry.size) {
    s = absl::DataLossError(
        StrCat(entry.path, ": read ", written, " of ", entry.size, " bytes"));
  }
  if (s.ok()) s = ApplyMetadata(fd.get(), entry, display);
  if (s.ok() && ::fsync(fd.get()) != 0) {
    s = Errno(errno, StrCat("syncing ", display));
  }
  fd.Reset();
  // renameat replaces whatever is at `name` - a symlink there included,
  // which is never followed.
  if (s.ok() && ::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) != 0) {
    const int e = errno;
    s = e == EISDIR ? absl::FailedPreconditionError(
                          StrCat(display,
                                 " is an existing directory; name the "
                                 "file's own path"))
                    : Errno(e, StrCat("renaming into ", display));
  }
  if (!s.ok()) {
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    return s;
  }
  ++stats_.files;
  stats_.bytes += written;
  return Status();
}

Status RestoreRun::SymlinkAt(int dir_fd, const std::string& name,
                             const BackupFileEntry& entry,
                             const std::string& display) {
  const std::string& target = entry.symlink_target;
  if (target.empty() || target.find('\0') != std::string::npos) {
    return absl::DataLossError(
        StrCat(entry.path, " is a symlink with an empty or malformed target"));
  }
  std::string tmp;
  bool created = false;
  for (int attempt = 0; attempt < kTempAttempts && !created; ++attempt) {
    tmp = NewTempName();
    // The target is written as stored; nothing is ever opened through it.
    if (::symlinkat(target.c_str(), dir_fd, tmp.c_str()) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      return Errno(errno, StrCat("creating the symlink ", display));
    }
  }
  if (!created) {
    return absl::AlreadyExistsError(
        StrCat("no free temporary name for ", display));
  }
  Status s;
  if (restore_owner_ && ::fchownat(dir_fd, tmp.c_str(), entry.uid, entry.gid,
                                   AT_SYMLINK_NOFOLLOW) != 0) {
    s = Errno(errno, StrCat("setting the owner of ", display));
  }
  const struct timespec times[2] = {ToTimespec(entry.atime_ns),
                                    ToTimespec(entry.mtime_ns)};
  if (s.ok() &&
      ::utimensat(dir_fd, tmp.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    s = Errno(errno, StrCat("setting the times of ", display));
  }
  if (s.ok() && ::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) != 0) {
    const int e = errno;
    s = e == EISDIR ? absl::FailedPreconditionError(
                          StrCat(display,
                                 " is an existing directory; name the "
                                 "symlink's own path"))
                    : Errno(e, StrCat("renaming into ", display));
  }
  if (!s.ok()) {
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    return s;
  }
  ++stats_.symlinks;
  return Status();
}

}  // namespace

FileRestorer::FileRestorer(BackupFileSource* source, FileRestoreOptions options)
    : source_(source), options_(std::move(options)) {}

StatusOr<FileRestoreStats> FileRestorer::Restore(
    const std::string& source_path, const std::string& target_path) {
  CAIRN_ASSIGN_OR_RETURN(std::vector<std::string> source_parts,
                         SplitAbsolutePath(source_path, "source path"));
  CAIRN_ASSIGN_OR_RETURN(std::vector<std::string> target_parts,
                         SplitAbsolutePath(target_path, "target path"));
  if (target_parts.empty()) {
    return absl::InvalidArgumentError(
        "the target path must name a file or directory below '/', not '/' "
        "itself");
  }
  for (const std::string& part : target_parts) {
    if (part.size() > kMaxNameBytes) {
      return absl::InvalidArgumentError(StrCat("target path component of ",
                                               part.size(), " bytes (at most ",
                                               kMaxNameBytes, ")"));
    }
  }
  const bool restore_owner = options_.restore_owner.has_value()
                                 ? *options_.restore_owner
                                 : ::geteuid() == 0;
  RestoreRun run(source_, options_, restore_owner);
  CAIRN_RETURN_IF_ERROR(run.Plan(source_parts));
  CAIRN_RETURN_IF_ERROR(run.Write(target_parts));
  return run.stats();
}

}  // namespace cairn
