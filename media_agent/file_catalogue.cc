#include "media_agent/file_catalogue.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "common/strings.h"
#include "common/utf8.h"

namespace cairn {
namespace {

constexpr size_t kMaxPathBytes = 4096;
// `error` of a FileSystemCatalogue holds the messages up to about this many
// bytes; further ones are only counted.
constexpr size_t kMaxExtentsPerFile = size_t{1} << 20;
// Directory descriptors the walk keeps open besides the root's (see Walker).
constexpr size_t kOpenDirBudget = 64;
constexpr size_t kMaxSymlinkTarget = 65536;

std::string ErrnoText(int err) { return std::strerror(err); }

int64_t Nanos(const struct statx_timestamp& t) {
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

v1::FileEntry::Type TypeOf(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return v1::FileEntry::REGULAR;
    case S_IFDIR:
      return v1::FileEntry::DIRECTORY;
    case S_IFLNK:
      return v1::FileEntry::SYMLINK;
    case S_IFCHR:
      return v1::FileEntry::CHAR_DEVICE;
    case S_IFBLK:
      return v1::FileEntry::BLOCK_DEVICE;
    case S_IFIFO:
      return v1::FileEntry::FIFO;
    case S_IFSOCK:
      return v1::FileEntry::SOCKET;
    default:
      return v1::FileEntry::TYPE_UNSPECIFIED;
  }
}

// File systems whose FIEMAP fe_physical is a byte offset on the block device
// they are mounted from, so that partition offset + fe_physical is where the
// data lies in the image. Not btrfs (logical addresses over possibly several
// devices), not network or virtual file systems.
bool PhysicalAddressesAreDeviceOffsets(int64_t magic) {
  switch (static_cast<uint64_t>(magic) & 0xffffffffu) {
    case EXT4_SUPER_MAGIC:  // ext2, ext3, ext4
    case XFS_SUPER_MAGIC:
    case MSDOS_SUPER_MAGIC:  // vfat, msdos
    case EXFAT_SUPER_MAGIC:
    case F2FS_SUPER_MAGIC:
    case 0x7366746e:  // ntfs3 ("ntfs")
    case 0x5346544e:  // ntfs (classic driver)
    case 0x482b:      // hfsplus
    case 0x3153464a:  // jfs
      return true;
    default:
      return false;
  }
}

// Flags that make an extent's bytes unreadable from the image as they are.
constexpr uint32_t kUnusableExtentFlags =
    FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_ENCODED |
    FIEMAP_EXTENT_DATA_ENCRYPTED | FIEMAP_EXTENT_NOT_ALIGNED |
    FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_DATA_TAIL |
    FIEMAP_EXTENT_UNWRITTEN;

// Fills entry->extents from FIEMAP on `fd` (a regular file of `size` bytes).
// Returns false (and leaves no extents) unless they describe every data byte
// exactly and lie inside the partition.
bool ReadExtents(int fd, uint64_t size, const FileSystemLocation& where,
                 v1::FileEntry* entry) {
  constexpr uint32_t kBatch = 512;
  // uint64_t storage keeps struct fiemap suitably aligned.
  std::vector<uint64_t> storage(
      (sizeof(struct fiemap) + kBatch * sizeof(struct fiemap_extent)) / 8 + 1);
  auto* fm = reinterpret_cast<struct fiemap*>(storage.data());
  auto fail = [&] {
    entry->clear_extents();
    return false;
  };
  uint64_t start = 0;
  uint64_t next_logical = 0;  // end of the previous extent (file offset)
  bool last = false;
  while (!last && start < size) {
    std::memset(fm, 0, sizeof(struct fiemap));
    fm->fm_start = start;
    fm->fm_length = FIEMAP_MAX_OFFSET - start;
    fm->fm_flags = 0;  // no FIEMAP_FLAG_SYNC: the mount is read-only
    fm->fm_extent_count = kBatch;
    if (::ioctl(fd, FS_IOC_FIEMAP, fm) != 0) return fail();
    if (fm->fm_mapped_extents == 0) break;  // only holes remain
    for (uint32_t i = 0; i < fm->fm_mapped_extents && !last; ++i) {
      const struct fiemap_extent& x = fm->fm_extents[i];
      if ((x.fe_flags & kUnusableExtentFlags) != 0) return fail();
      if (x.fe_length == 0 || x.fe_logical < next_logical) return fail();
      if (x.fe_flags & FIEMAP_EXTENT_LAST) last = true;
      next_logical = x.fe_logical + x.fe_length;
      if (x.fe_logical >= size) {  // preallocated past the end of the file
        last = true;
        break;
      }
      // The whole extent (slack of the last block included) must lie in the
      // partition; only the bytes up to the file's size are listed.
      if (x.fe_physical > where.size ||
          x.fe_length > where.size - x.fe_physical)
        return fail();
      if (where.offset >
          std::numeric_limits<uint64_t>::max() - x.fe_physical - x.fe_length)
        return fail();
      uint64_t length = std::min<uint64_t>(x.fe_length, size - x.fe_logical);
      uint64_t image_offset = where.offset + x.fe_physical;
      int n = entry->extents_size();
      if (n > 0) {
        v1::FileExtent* prev = entry->mutable_extents(n - 1);
        if (prev->file_offset() + prev->length() == x.fe_logical &&
            prev->image_offset() + prev->length() == image_offset) {
          prev->set_length(prev->length() + length);
          continue;
        }
      }
      if (static_cast<size_t>(n) >= kMaxExtentsPerFile) return fail();
      v1::FileExtent* e = entry->add_extents();
      e->set_file_offset(x.fe_logical);
      e->set_image_offset(image_offset);
      e->set_length(length);
    }
    start = next_logical;
  }
  return true;
}

// The walk. Hand-written rather than std::filesystem::recursive_directory_
// iterator because that works on path strings (every step re-resolves the
// whole path, so a symlink swapped into a parent is followed), follows
// symlinks in several of its calls, crosses mount points without telling,
// gives no st_dev/mount id, and reports errors by throwing or by stopping
// the iteration - here every step is an openat/statx relative to an open
// directory descriptor, with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, and an error
// costs one entry, not the walk.
//
// Descriptors: a directory's descriptor is needed while its children are
// processed (openat, statx and readlinkat are relative to it). Only the root
// and the kOpenDirBudget deepest directories keep theirs open; a shallower
// one whose descriptor was closed is reopened, component by component from
// its nearest open ancestor, when the walk comes back to it, and checked to
// be the same directory (device and inode).
class Walker {
 public:
  Walker(const FileSystemLocation& where, const CatalogueLimits& limits,
         v1::FileSystemCatalogue* out)
      : where_(where),
        limits_(limits),
        out_(out),
        deadline_(std::chrono::steady_clock::now() + limits.deadline) {}

  ~Walker() {
    for (auto& f : frames_) CloseFrame(&f);
  }

  Status Run(const std::string& mount_dir) {
    int root = ::open(mount_dir.c_str(),
                      O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
    if (root < 0) return ErrnoToStatus(errno, "open", mount_dir);
    Frame root_frame;
    root_frame.fd = root;
    root_frame.path = "/";
    frames_.push_back(std::move(root_frame));

    struct statx st;
    if (::statx(root, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW,
                STATX_BASIC_STATS | STATX_MNT_ID, &st) != 0) {
      return ErrnoToStatus(errno, "statx", mount_dir);
    }
    root_dev_ = makedev(st.stx_dev_major, st.stx_dev_minor);
    has_mnt_id_ = (st.stx_mask & STATX_MNT_ID) != 0;
    root_mnt_id_ = st.stx_mnt_id;
    struct statfs sfs;
    if (::fstatfs(root, &sfs) == 0) {
      extents_usable_ = PhysicalAddressesAreDeviceOffsets(sfs.f_type);
      is_xfs_ = static_cast<uint64_t>(sfs.f_type) == XFS_SUPER_MAGIC;
    }
    frames_[0].dev = root_dev_;
    frames_[0].ino = st.stx_ino;

    if (!Admit()) return absl::OkStatus();
    v1::FileEntry* entry = out_->add_entries();
    FillEntry(st, "/", entry);
    ReadNames(&frames_[0]);
    if (!frames_[0].names.empty() && limits_.max_depth < 1) {
      DepthLimit("/");
      frames_[0].names.clear();
    }

    while (!frames_.empty() && !stop_) {
      Frame& top = frames_.back();
      if (top.next >= top.names.size()) {
        CloseFrame(&top);
        frames_.pop_back();
        continue;
      }
      std::string name = std::move(top.names[top.next++]);
      if (!EnsureOpen(frames_.size() - 1)) {
        frames_.back().names.clear();  // cannot read the rest of it
        continue;
      }
      VisitChild(name);
    }
    return absl::OkStatus();
  }

  std::string Error() const {
    return errors_.Finish(StrCat("partition ", where_.partition, ": "),
                          limit_message_);
  }
  bool truncated() const { return truncated_; }

 private:
  struct Frame {
    int fd = -1;
    std::string path;  // "/" or "/a/b"
    std::string name;  // last component ("" for the root)
    int depth = 0;
    dev_t dev = 0;
    uint64_t ino = 0;
    std::vector<std::string> names;  // children, sorted
    size_t next = 0;
  };

  static void CloseFrame(Frame* f) {
    if (f->fd >= 0) ::close(f->fd);
    f->fd = -1;
  }

  // False (and the walk stops, truncated) if one more entry would exceed a
  // limit.
  bool Admit() {
    if (static_cast<uint64_t>(out_->entries_size()) >= limits_.max_entries) {
      Truncate(StrCat("catalogue truncated: more than ", limits_.max_entries,
                      " entries (the max_entries limit)"));
      return false;
    }
    if (std::chrono::steady_clock::now() > deadline_) {
      Truncate(StrCat("catalogue truncated: the deadline of ",
                      limits_.deadline.count(), " ms passed after ",
                      out_->entries_size(), " entries"));
      return false;
    }
    return true;
  }

  void Truncate(std::string message) {
    truncated_ = true;
    stop_ = true;
    if (limit_message_.empty()) limit_message_ = std::move(message);
  }

  void DepthLimit(std::string_view dir) {
    truncated_ = true;
    if (limit_message_.empty()) {
      limit_message_ = StrCat(
          "catalogue truncated: directories deeper than the max_depth limit (",
          limits_.max_depth, ") were not read, first ", PrintableUtf8(dir));
    }
  }

  bool OnOtherMount(const struct statx& st) const {
    if (has_mnt_id_ && (st.stx_mask & STATX_MNT_ID) != 0) {
      // Same mount: same file system, even where st_dev differs (a btrfs
      // subvolume below the mounted one).
      return st.stx_mnt_id != root_mnt_id_;
    }
    return makedev(st.stx_dev_major, st.stx_dev_minor) != root_dev_;
  }

  // Makes sure frames_[i].fd is open, reopening it (and checking it is the
  // same directory) from its nearest open ancestor. Records an error and
  // returns false if that fails.
  bool EnsureOpen(size_t i) {
    if (frames_[i].fd >= 0) return true;
    size_t j = i;
    while (frames_[j].fd < 0) --j;  // frames_[0] (the root) is always open
    int fd = frames_[j].fd;
    for (size_t k = j + 1; k <= i; ++k) {
      int next = ::openat(fd, frames_[k].name.c_str(),
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int err = errno;
      if (k > j + 1) ::close(fd);
      if (next < 0) {
        errors_.Add(StrCat(PrintableUtf8(frames_[k].path),
                           ": reopen: ", ErrnoText(err)));
        return false;
      }
      struct stat st;
      if (::fstat(next, &st) != 0 || st.st_dev != frames_[k].dev ||
          st.st_ino != frames_[k].ino) {
        ::close(next);
        errors_.Add(StrCat(PrintableUtf8(frames_[k].path),
                           ": changed while it was being catalogued"));
        return false;
      }
      fd = next;
    }
    frames_[i].fd = fd;
    return true;
  }

  void FillEntry(const struct statx& st, std::string path,
                 v1::FileEntry* entry) {
    entry->set_path(std::move(path));
    entry->set_type(TypeOf(st.stx_mode));
    entry->set_size(st.stx_size);
    entry->set_mode(st.stx_mode & 07777);
    entry->set_uid(st.stx_uid);
    entry->set_gid(st.stx_gid);
    entry->set_mtime_ns(Nanos(st.stx_mtime));
    entry->set_atime_ns(Nanos(st.stx_atime));
    entry->set_ctime_ns(Nanos(st.stx_ctime));
    entry->set_inode(st.stx_ino);
    entry->set_nlink(st.stx_nlink);
    if (S_ISCHR(st.stx_mode) || S_ISBLK(st.stx_mode)) {
      entry->set_rdev(makedev(st.stx_rdev_major, st.stx_rdev_minor));
    }
  }

  // Reads the names in frame->fd, sorted by bytes. Errors are recorded; the
  // names read before one are kept.
  void ReadNames(Frame* frame) {
    int dup = ::openat(frame->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dup < 0) {
      errors_.Add(StrCat(PrintableUtf8(frame->path),
                         ": open directory: ", ErrnoText(errno)));
      return;
    }
    DIR* d = ::fdopendir(dup);
    if (d == nullptr) {
      errors_.Add(StrCat(PrintableUtf8(frame->path),
                         ": open directory: ", ErrnoText(errno)));
      ::close(dup);
      return;
    }
    // More names than the entries still allowed cannot all be recorded (the
    // walk will end truncated). Keep only the smallest `room` + 1 of them,
    // so a truncated catalogue is a prefix of the full one and memory stays
    // bounded by the limit, however large the directory.
    const uint64_t room =
        limits_.max_entries -
        std::min<uint64_t>(limits_.max_entries,
                           static_cast<uint64_t>(out_->entries_size()));
    const size_t keep = static_cast<size_t>(
        std::min<uint64_t>(room, std::numeric_limits<uint32_t>::max()) + 1);
    auto trim = [&] {
      if (frame->names.size() <= keep) return;
      std::nth_element(frame->names.begin(), frame->names.begin() + keep,
                       frame->names.end());
      frame->names.resize(keep);
    };
    while (true) {
      errno = 0;
      struct dirent* e = ::readdir(d);
      if (e == nullptr) {
        if (errno != 0) {
          errors_.Add(StrCat(PrintableUtf8(frame->path),
                             ": read directory: ", ErrnoText(errno)));
        }
        break;
      }
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      frame->names.emplace_back(name);
      if (frame->names.size() >= 2 * keep + 1024) trim();
    }
    ::closedir(d);
    trim();
    std::sort(frame->names.begin(), frame->names.end());
  }

  void VisitChild(const std::string& name) {
    Frame& parent = frames_.back();
    std::string path =
        parent.path == "/" ? StrCat("/", name) : StrCat(parent.path, "/", name);
    if (path.size() > kMaxPathBytes) {
      errors_.Add(StrCat(PrintableUtf8(path.substr(0, 64)),
                         "...: path longer than ", kMaxPathBytes,
                         " bytes, not catalogued"));
      return;
    }
    if (!Admit()) return;
    struct statx st;
    if (::statx(parent.fd, name.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                STATX_BASIC_STATS | STATX_MNT_ID, &st) != 0) {
      errors_.Add(StrCat(PrintableUtf8(path), ": stat: ", ErrnoText(errno)));
      return;
    }
    if (OnOtherMount(st)) {
      errors_.Add(StrCat(PrintableUtf8(path),
                         ": another file system is mounted here; not "
                         "catalogued"));
      return;
    }
    v1::FileEntry* entry = out_->add_entries();
    FillEntry(st, path, entry);
    if (S_ISREG(st.stx_mode)) {
      entry->set_extents_complete(ExtentsOf(parent.fd, name, st, entry));
    } else if (S_ISLNK(st.stx_mode)) {
      ReadLink(parent.fd, name, st.stx_size, path, entry);
    } else if (S_ISDIR(st.stx_mode)) {
      Descend(name, std::move(path), st);
    }
  }

  bool ExtentsOf(int dir_fd, const std::string& name, const struct statx& st,
                 v1::FileEntry* entry) {
    if (!extents_usable_) return false;
    int fd =
        ::openat(dir_fd, name.c_str(),
                 O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return false;
    bool ok = false;
    struct stat fst;
    if (::fstat(fd, &fst) == 0 && S_ISREG(fst.st_mode) &&
        fst.st_ino == st.stx_ino) {
      ok = true;
      if (is_xfs_) {
        // Realtime files live on XFS's separate realtime device.
        struct fsxattr fsx;
        ok = ::ioctl(fd, FS_IOC_FSGETXATTR, &fsx) == 0 &&
             (fsx.fsx_xflags & FS_XFLAG_REALTIME) == 0;
      }
      ok = ok && ReadExtents(fd, st.stx_size, where_, entry);
    }
    ::close(fd);
    return ok;
  }

  void ReadLink(int dir_fd, const std::string& name, uint64_t size,
                const std::string& path, v1::FileEntry* entry) {
    size_t cap = std::max<size_t>(256, std::min<uint64_t>(size, 4096) + 1);
    while (true) {
      std::string buf(cap, '\0');
      ssize_t n = ::readlinkat(dir_fd, name.c_str(), buf.data(), buf.size());
      if (n < 0) {
        errors_.Add(
            StrCat(PrintableUtf8(path), ": readlink: ", ErrnoText(errno)));
        return;
      }
      if (static_cast<size_t>(n) < buf.size()) {
        buf.resize(static_cast<size_t>(n));
        entry->set_symlink_target(std::move(buf));
        return;
      }
      if (cap >= kMaxSymlinkTarget) {
        errors_.Add(StrCat(PrintableUtf8(path), ": symlink target longer than ",
                           kMaxSymlinkTarget, " bytes"));
        return;
      }
      cap *= 4;
    }
  }

  void Descend(const std::string& name, std::string path,
               const struct statx& st) {
    Frame& parent = frames_.back();
    int fd = ::openat(parent.fd, name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      errors_.Add(
          StrCat(PrintableUtf8(path), ": open directory: ", ErrnoText(errno)));
      return;
    }
    struct stat fst;
    if (::fstat(fd, &fst) != 0 || fst.st_ino != st.stx_ino ||
        fst.st_dev != makedev(st.stx_dev_major, st.stx_dev_minor)) {
      ::close(fd);
      errors_.Add(StrCat(PrintableUtf8(path),
                         ": changed while it was being catalogued"));
      return;
    }
    Frame child;
    child.fd = fd;
    child.path = std::move(path);
    child.name = name;
    child.depth = parent.depth + 1;
    child.dev = fst.st_dev;
    child.ino = fst.st_ino;
    ReadNames(&child);
    if (child.names.empty()) {
      CloseFrame(&child);
      return;
    }
    if (child.depth + 1 > limits_.max_depth) {
      DepthLimit(child.path);
      CloseFrame(&child);
      return;
    }
    frames_.push_back(std::move(child));
    // Keep the root and the kOpenDirBudget deepest descriptors open.
    if (frames_.size() > kOpenDirBudget + 1) {
      CloseFrame(&frames_[frames_.size() - 1 - kOpenDirBudget]);
    }
  }

  const FileSystemLocation& where_;
  const CatalogueLimits& limits_;
  v1::FileSystemCatalogue* const out_;
  const std::chrono::steady_clock::time_point deadline_;
  std::vector<Frame> frames_;
  dev_t root_dev_ = 0;
  bool has_mnt_id_ = false;
  uint64_t root_mnt_id_ = 0;
  bool extents_usable_ = false;
  bool is_xfs_ = false;
  bool truncated_ = false;
  bool stop_ = false;
  std::string limit_message_;
  CatalogueErrors errors_;
};

// True if `path` is what NormalizeBrowsePath returns for it.
bool IsNormalPath(std::string_view path) {
  if (path.empty() || path[0] != '/' || path.size() > kMaxPathBytes)
    return false;
  if (path.size() == 1) return true;
  if (path.back() == '/') return false;
  size_t i = 1;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view c = path.substr(i, j - i);
    if (c.empty() || c == "." || c == ".." ||
        c.find('\0') != std::string_view::npos)
      return false;
    i = j + 1;
  }
  return true;
}

std::string_view ParentOf(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? path.substr(0, 1) : path.substr(0, slash);
}

std::string_view NameOf(std::string_view path) {
  return path.substr(path.rfind('/') + 1);
}

std::string PartitionList(const v1::FileCatalogue& c) {
  std::string out;
  for (const auto& fs : c.filesystems()) {
    if (!out.empty()) out += ", ";
    out += std::to_string(fs.partition());
    if (!fs.fs_type().empty()) out += StrCat(" (", fs.fs_type(), ")");
  }
  return out.empty() ? "none" : out;
}

}  // namespace

StatusOr<v1::FileSystemCatalogue> CatalogueFileSystem(
    const std::string& mount_dir, const FileSystemLocation& where,
    const CatalogueLimits& limits) {
  if (limits.max_depth < 0 || limits.deadline.count() < 0) {
    return absl::InvalidArgumentError(
        "catalogue limits: max_depth and deadline must not be negative");
  }
  v1::FileSystemCatalogue out;
  out.set_partition(where.partition);
  out.set_offset(where.offset);
  out.set_size(where.size);
  out.set_fs_type(PrintableUtf8(where.fs_type));
  out.set_label(PrintableUtf8(where.label));
  out.set_uuid(PrintableUtf8(where.uuid));
  Walker walker(where, limits, &out);
  CAIRN_RETURN_IF_ERROR(walker.Run(mount_dir));
  out.set_truncated(walker.truncated());
  out.set_error(walker.Error());
  return out;
}

StatusOr<std::string> NormalizeBrowsePath(std::string_view path) {
  if (path.size() > kMaxPathBytes) {
    return absl::InvalidArgumentError(StrCat(
        "path of ", path.size(), " bytes is longer than ", kMaxPathBytes));
  }
  if (path.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("path contains a NUL byte");
  }
  std::string out;
  out.reserve(path.size() + 1);
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view c = path.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      return absl::InvalidArgumentError(
          StrCat("path traversal: '..' is not allowed in '",
                 PrintableUtf8(path), "'"));
    }
    out += '/';
    out.append(c);
  }
  if (out.empty()) out = "/";
  return out;
}

// ---- CatalogueIndex ---------------------------------------------------------

StatusOr<std::unique_ptr<CatalogueIndex>> CatalogueIndex::Create(
    v1::FileCatalogue catalogue) {
  std::unique_ptr<CatalogueIndex> index(
      new CatalogueIndex(std::move(catalogue)));
  CAIRN_RETURN_IF_ERROR(index->Build());
  return index;
}

Status CatalogueIndex::Build() {
  const int nfs = catalogue_.filesystems_size();
  indexes_.resize(static_cast<size_t>(nfs));
  for (int k = 0; k < nfs; ++k) {
    const v1::FileSystemCatalogue& fs = catalogue_.filesystems(k);
    for (int m = 0; m < k; ++m) {
      if (catalogue_.filesystems(m).partition() == fs.partition()) {
        return absl::InvalidArgumentError(
            StrCat("malformed file catalogue: partition ", fs.partition(),
                   " is listed twice"));
      }
    }
    FsIndex& index = indexes_[static_cast<size_t>(k)];
    index.fs = &fs;
    const auto& entries = fs.entries();
    const size_t n = static_cast<size_t>(entries.size());
    if (n >= std::numeric_limits<uint32_t>::max()) {
      return absl::InvalidArgumentError(StrCat("file catalogue of partition ",
                                               fs.partition(),
                                               ": too many entries"));
    }
    auto malformed = [&](std::string_view path, std::string_view what) {
      return absl::InvalidArgumentError(
          StrCat("malformed file catalogue: partition ", fs.partition(), ": '",
                 PrintableUtf8(path), "' ", what));
    };
    index.by_path.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      std::string_view path = entries[static_cast<int>(i)].path();
      if (!IsNormalPath(path)) return malformed(path, "is not a normal path");
      if (!index.by_path.emplace(path, static_cast<uint32_t>(i)).second) {
        return malformed(path, "is listed twice");
      }
    }
    // Parents, then a CSR children index.
    constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
    std::vector<uint32_t> parent(n, kNone);
    index.child_begin.assign(n + 1, 0);
    for (size_t i = 0; i < n; ++i) {
      std::string_view path = entries[static_cast<int>(i)].path();
      if (path == "/") continue;
      auto it = index.by_path.find(ParentOf(path));
      if (it == index.by_path.end()) return malformed(path, "has no parent");
      if (entries[static_cast<int>(it->second)].type() !=
          v1::FileEntry::DIRECTORY) {
        return malformed(path, "has a parent that is not a directory");
      }
      parent[i] = it->second;
      ++index.child_begin[it->second + 1];
    }
    for (size_t i = 0; i < n; ++i) {
      index.child_begin[i + 1] += index.child_begin[i];
    }
    index.child_index.resize(index.child_begin[n]);
    std::vector<uint32_t> fill(index.child_begin.begin(),
                               index.child_begin.end() - 1);
    for (size_t i = 0; i < n; ++i) {
      if (parent[i] != kNone)
        index.child_index[fill[parent[i]]++] = static_cast<uint32_t>(i);
    }
    for (size_t i = 0; i < n; ++i) {
      auto first = index.child_index.begin() + index.child_begin[i];
      auto last = index.child_index.begin() + index.child_begin[i + 1];
      if (last - first > 1) {
        std::sort(first, last, [&](uint32_t a, uint32_t b) {
          return NameOf(entries[static_cast<int>(a)].path()) <
                 NameOf(entries[static_cast<int>(b)].path());
        });
      }
    }
  }
  return absl::OkStatus();
}

StatusOr<const CatalogueIndex::FsIndex*> CatalogueIndex::IndexOf(
    const v1::FileSystemCatalogue& fs) const {
  for (const auto& index : indexes_) {
    if (index.fs == &fs) return &index;
  }
  return absl::InvalidArgumentError(
      StrCat("file system of partition ", fs.partition(),
             " is not part of this catalogue index"));
}

StatusOr<uint32_t> CatalogueIndex::EntryIndex(const FsIndex& index,
                                              std::string_view path) const {
  CAIRN_ASSIGN_OR_RETURN(std::string normal, NormalizeBrowsePath(path));
  auto it = index.by_path.find(std::string_view(normal));
  if (it == index.by_path.end()) {
    return absl::NotFoundError(StrCat("no '", PrintableUtf8(normal),
                                      "' in the file catalogue of partition ",
                                      index.fs->partition()));
  }
  return it->second;
}

StatusOr<const v1::FileSystemCatalogue*> CatalogueIndex::FileSystem(
    std::optional<uint32_t> partition) const {
  const auto& all = catalogue_.filesystems();
  if (partition.has_value()) {
    for (const auto& fs : all) {
      if (fs.partition() == *partition) return &fs;
    }
    return absl::NotFoundError(StrCat("partition ", *partition,
                                      " has no file catalogue (catalogued: ",
                                      PartitionList(catalogue_), ")"));
  }
  if (all.empty()) {
    return absl::NotFoundError(StrCat("backup '", catalogue_.backup_id(),
                                      "' has no catalogued file system"));
  }
  if (all.size() == 1) return &all[0];
  const v1::FileSystemCatalogue* found = nullptr;
  int count = 0;
  for (size_t k = 0; k < indexes_.size(); ++k) {
    auto it = indexes_[k].by_path.find(std::string_view("/etc"));
    if (it != indexes_[k].by_path.end() &&
        indexes_[k].fs->entries(static_cast<int>(it->second)).type() ==
            v1::FileEntry::DIRECTORY) {
      found = indexes_[k].fs;
      ++count;
    }
  }
  if (count == 1) return found;
  return absl::InvalidArgumentError(
      StrCat("the backup has several file systems (partitions ",
             PartitionList(catalogue_), ") and ",
             count == 0 ? "none" : "more than one",
             " of them has /etc; name the partition"));
}

StatusOr<const v1::FileEntry*> CatalogueIndex::Lookup(
    const v1::FileSystemCatalogue& fs, std::string_view path) const {
  CAIRN_ASSIGN_OR_RETURN(const FsIndex* index, IndexOf(fs));
  CAIRN_ASSIGN_OR_RETURN(uint32_t i, EntryIndex(*index, path));
  return &fs.entries(static_cast<int>(i));
}

StatusOr<std::vector<const v1::FileEntry*>> CatalogueIndex::List(
    const v1::FileSystemCatalogue& fs, std::string_view dir) const {
  CAIRN_ASSIGN_OR_RETURN(const FsIndex* index, IndexOf(fs));
  CAIRN_ASSIGN_OR_RETURN(uint32_t i, EntryIndex(*index, dir));
  const v1::FileEntry& entry = fs.entries(static_cast<int>(i));
  if (entry.type() != v1::FileEntry::DIRECTORY) {
    return absl::FailedPreconditionError(
        StrCat("'", PrintableUtf8(entry.path()), "' in partition ",
               fs.partition(), " is not a directory"));
  }
  std::vector<const v1::FileEntry*> out;
  out.reserve(index->child_begin[i + 1] - index->child_begin[i]);
  for (uint32_t c = index->child_begin[i]; c < index->child_begin[i + 1]; ++c) {
    out.push_back(&fs.entries(static_cast<int>(index->child_index[c])));
  }
  return out;
}

std::vector<std::pair<uint32_t, const v1::FileEntry*>> CatalogueIndex::Find(
    std::string_view pattern, std::optional<uint32_t> partition, size_t limit,
    bool* truncated) const {
  std::vector<std::pair<uint32_t, const v1::FileEntry*>> out;
  if (truncated != nullptr) *truncated = false;
  const std::string pat(pattern);
  if (pat.find('\0') != std::string::npos) return out;
  const bool whole_path = pat.find('/') != std::string::npos;
  for (const auto& fs : catalogue_.filesystems()) {
    if (partition.has_value() && fs.partition() != *partition) continue;
    for (const auto& entry : fs.entries()) {
      const std::string& path = entry.path();
      int rc;
      if (whole_path) {
        rc = ::fnmatch(pat.c_str(), path.c_str(), FNM_PATHNAME);
      } else {
        if (path == "/") continue;  // the root has no name
        // The last component is a suffix of the path, so NUL-terminated.
        rc = ::fnmatch(pat.c_str(), path.c_str() + path.rfind('/') + 1, 0);
      }
      if (rc != 0) continue;
      if (out.size() >= limit) {
        if (truncated != nullptr) *truncated = true;
        return out;
      }
      out.emplace_back(fs.partition(), &entry);
    }
  }
  return out;
}

std::vector<const v1::FileEntry*> CatalogueIndex::Subtree(
    const v1::FileSystemCatalogue& fs, std::string_view dir) const {
  std::vector<const v1::FileEntry*> out;
  auto index = IndexOf(fs);
  if (!index.ok()) return out;
  auto start = EntryIndex(**index, dir);
  if (!start.ok()) return out;
  std::vector<uint32_t> stack = {*start};
  while (!stack.empty()) {
    uint32_t i = stack.back();
    stack.pop_back();
    out.push_back(&fs.entries(static_cast<int>(i)));
    for (uint32_t c = (*index)->child_begin[i + 1];
         c > (*index)->child_begin[i]; --c) {
      stack.push_back((*index)->child_index[c - 1]);
    }
  }
  return out;
}

// ---- Reading through extents ------------------------------------------------

Status ReadFileFromExtents(ExportedImage* image, const v1::FileEntry& entry,
                           uint64_t offset, uint64_t length,
                           const std::function<Status(std::string_view)>& sink,
                           size_t block) {
  const std::string name = PrintableUtf8(entry.path());
  if (entry.type() != v1::FileEntry::REGULAR) {
    return absl::FailedPreconditionError(
        StrCat("'", name, "' is not a regular file"));
  }
  if (!entry.extents_complete()) {
    return absl::FailedPreconditionError(
        StrCat("'", name,
               "' has no complete extent list in the catalogue (inline, "
               "encoded or unmapped data, or a file system without FIEMAP); "
               "read it from a mount"));
  }
  if (block == 0) return absl::InvalidArgumentError("read block size is 0");
  const uint64_t size = entry.size();
  const uint64_t image_size = image->size();
  const auto& extents = entry.extents();
  uint64_t prev_end = 0;
  for (int i = 0; i < extents.size(); ++i) {
    const v1::FileExtent& e = extents[i];
    if (e.length() == 0 || e.file_offset() < prev_end ||
        e.file_offset() > size || e.length() > size - e.file_offset()) {
      return absl::DataLossError(
          StrCat("file catalogue entry '", name, "': extent ", i,
                 " is empty, out of order, overlapping or past the file's "
                 "size ",
                 size));
    }
    if (e.image_offset() > image_size ||
        e.length() > image_size - e.image_offset()) {
      return absl::DataLossError(
          StrCat("file catalogue entry '", name, "': extent ", i,
                 " at image "
                 "offset ",
                 e.image_offset(), " (", e.length(),
                 " bytes) lies outside the image of ", image_size, " bytes"));
    }
    prev_end = e.file_offset() + e.length();
  }
  if (offset > size) {
    return absl::OutOfRangeError(StrCat("offset ", offset,
                                        " is past the end of '", name, "' (",
                                        size, " bytes)"));
  }
  const uint64_t end =
      (length == 0 || length > size - offset) ? size : offset + length;
  if (end == offset) return absl::OkStatus();
  std::string buf(std::min<uint64_t>(block, end - offset), '\0');
  // First extent that ends after `offset`.
  int next = static_cast<int>(
      std::partition_point(extents.begin(), extents.end(),
                           [&](const v1::FileExtent& e) {
                             return e.file_offset() + e.length() <= offset;
                           }) -
      extents.begin());
  uint64_t pos = offset;
  while (pos < end) {
    const uint64_t n = std::min<uint64_t>(block, end - pos);
    const uint64_t piece_end = pos + n;
    uint64_t cursor = pos;  // filled up to here
    for (int i = next; i < extents.size(); ++i) {
      const v1::FileExtent& e = extents[i];
      if (e.file_offset() >= piece_end) break;
      uint64_t s = std::max(cursor, e.file_offset());
      uint64_t t = std::min(piece_end, e.file_offset() + e.length());
      if (s > cursor) std::memset(buf.data() + (cursor - pos), 0, s - cursor);
      CAIRN_RETURN_IF_ERROR(
          image->Read(e.image_offset() + (s - e.file_offset()),
                      static_cast<size_t>(t - s), buf.data() + (s - pos)));
      cursor = t;
    }
    if (cursor < piece_end)
      std::memset(buf.data() + (cursor - pos), 0, piece_end - cursor);
    while (next < extents.size() &&
           extents[next].file_offset() + extents[next].length() <= piece_end) {
      ++next;
    }
    CAIRN_RETURN_IF_ERROR(sink(std::string_view(buf.data(), n)));
    pos = piece_end;
  }
  return absl::OkStatus();
}

void CatalogueErrors::Add(std::string message) {
  ++count_;
  if (text_.size() + message.size() + 2 > kMaxBytes) {
    ++dropped_;
    return;
  }
  if (!text_.empty()) text_ += "; ";
  text_ += message;
}

std::string CatalogueErrors::Finish(const std::string& prefix,
                                    const std::string& limit) const {
  if (count_ == 0 && limit.empty()) return "";
  std::string out = prefix;
  if (!limit.empty()) out += limit;
  if (!text_.empty()) {
    if (!limit.empty()) out += "; ";
    out += text_;
  }
  if (dropped_ > 0) out += StrCat("; and ", dropped_, " more errors");
  return out;
}

}  // namespace cairn
