#include "media_agent/sandbox_disk.h"

#include <dirent.h>
#include <fcntl.h>
#include <guestfs.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <thread>
#include <utility>

#include "common/strings.h"
#include "common/utf8.h"
#include "media_agent/guestfs_appliance.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxPathBytes = 4096;
// `error` of a FileSystemCatalogue holds the messages up to about this many
// bytes; further ones are only counted (as CatalogueFileSystem does).
// guestfs_pread answers at most ~2 MiB per call (the protocol's message
// limit); Browser streams 1 MiB pieces.
constexpr int kReadPiece = 1 << 20;

// "'/etc/x'" for messages.
std::string Quoted(std::string_view path) {
  return StrCat("'", PrintableUtf8(path), "'");
}

struct StatnsListFree {
  void operator()(guestfs_statns_list* l) const { guestfs_free_statns_list(l); }
};
struct StatnsFree {
  void operator()(struct guestfs_statns* s) const { guestfs_free_statns(s); }
};
struct PartitionListFree {
  void operator()(guestfs_partition_list* l) const {
    guestfs_free_partition_list(l);
  }
};

v1::FileEntry::Type TypeOf(int64_t mode) {
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

// The entry an lstat in the appliance describes. The appliance's glibc
// encodes st_rdev as the host's does (makedev), so rdev compares with the
// host path's.
void FillEntry(const struct guestfs_statns& st, std::string path,
               v1::FileEntry* entry) {
  entry->set_path(std::move(path));
  entry->set_type(TypeOf(st.st_mode));
  entry->set_size(static_cast<uint64_t>(st.st_size));
  entry->set_mode(static_cast<uint32_t>(st.st_mode & 07777));
  entry->set_uid(static_cast<uint32_t>(st.st_uid));
  entry->set_gid(static_cast<uint32_t>(st.st_gid));
  entry->set_mtime_ns(st.st_mtime_sec * 1000000000 + st.st_mtime_nsec);
  entry->set_atime_ns(st.st_atime_sec * 1000000000 + st.st_atime_nsec);
  entry->set_ctime_ns(st.st_ctime_sec * 1000000000 + st.st_ctime_nsec);
  entry->set_inode(static_cast<uint64_t>(st.st_ino));
  entry->set_nlink(static_cast<uint32_t>(st.st_nlink));
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    entry->set_rdev(static_cast<uint64_t>(st.st_rdev));
  }
  entry->set_extents_complete(false);
}

// "partition 2 (swap at offset 34603008)", "whole disk (ext4 at offset 0)":
// how every message names a file system (as DescribePartition does on the
// host path).
std::string Describe(uint32_t partition, std::string_view fs_type,
                     uint64_t offset) {
  std::string content =
      fs_type.empty() ? "unknown content" : PrintableUtf8(fs_type);
  if (partition == 0) {
    return StrCat("whole disk (", content, " at offset ", offset, ")");
  }
  return StrCat("partition ", partition, " (", content, " at offset ", offset,
                ")");
}

}  // namespace

namespace {

// One directory's children as the appliance lists them.
struct Child {
  std::string name;
  bool stat_ok = false;
  struct guestfs_statns st {};
  std::string target;  // symlinks: readlink's result ("" if it failed)
};

// The walk of the file system mounted at the appliance's "/", with the
// same order, limits and error reporting as CatalogueFileSystem's Walker
// (media_agent/file_catalogue.cc), one directory at a time: each directory
// is listed (guestfs_ls), its entries stat'ed together (lstatnslist) and
// its symlinks read together (readlinklist) when the walk reaches it, and
// kept in a frame while its subtrees are walked.
class SandboxWalker {
 public:
  SandboxWalker(GuestfsAppliance* a, uint32_t partition, std::string desc,
                const CatalogueLimits& limits, v1::FileSystemCatalogue* out)
      : a_(*a),
        g_(a->g()),
        partition_(partition),
        desc_(std::move(desc)),
        limits_(limits),
        out_(out),
        deadline_(Clock::now() + limits.deadline) {}

  // Fills out_'s entries, truncated and error. An error only if the root
  // cannot be stat'ed (the appliance's error; Unavailable if it is gone).
  Status Run() {
    std::unique_ptr<struct guestfs_statns, StatnsFree> root(
        a_.Call(StrCat(desc_, ": reading its root"),
                [&] { return guestfs_lstatns(g_, "/"); }));
    if (root == nullptr) {
      return a_.Error(absl::StatusCode::kDataLoss,
                      StrCat(desc_, ": reading its root"));
    }
    if (Admit()) {
      FillEntry(*root, "/", out_->add_entries());
      std::vector<std::string> names = ListNames("/");
      if (!names.empty() && limits_.max_depth < 1) {
        DepthLimit("/");
      } else if (!stop_) {
        Frame f;
        f.path = "/";
        f.children = StatChildren("/", std::move(names));
        frames_.push_back(std::move(f));
      }
    }
    while (!frames_.empty() && !stop_) {
      Frame& top = frames_.back();
      if (top.next >= top.children.size()) {
        frames_.pop_back();
        continue;
      }
      Child child = std::move(top.children[top.next++]);
      std::string path = top.path == "/" ? StrCat("/", child.name)
                                         : StrCat(top.path, "/", child.name);
      const int depth = top.depth + 1;  // `top` dangles after a push
      Visit(std::move(child), std::move(path), depth);
    }
    out_->set_truncated(truncated_);
    out_->set_error(
        errors_.Finish(StrCat("partition ", partition_, ": "), limit_message_));
    return absl::OkStatus();
  }

 private:
  struct Frame {
    std::string path;  // "/" or "/a/b"
    int depth = 0;
    std::vector<Child> children;  // sorted by name
    size_t next = 0;
  };

  void Visit(Child c, std::string path, int depth) {
    if (path.size() > kMaxPathBytes) {
      errors_.Add(StrCat(PrintableUtf8(path.substr(0, 64)),
                         "...: path longer than ", kMaxPathBytes,
                         " bytes, not catalogued"));
      return;
    }
    if (!Admit()) return;
    if (!c.stat_ok) {
      errors_.Add(
          StrCat(PrintableUtf8(path), ": stat failed in the appliance"));
      return;
    }
    v1::FileEntry* entry = out_->add_entries();
    FillEntry(c.st, path, entry);
    if (S_ISLNK(c.st.st_mode)) {
      if (c.target.empty()) {
        errors_.Add(StrCat(PrintableUtf8(path), ": readlink failed"));
      } else {
        entry->set_symlink_target(std::move(c.target));
      }
    } else if (S_ISDIR(c.st.st_mode)) {
      std::vector<std::string> names = ListNames(path);
      if (names.empty() || stop_) return;
      if (depth + 1 > limits_.max_depth) {
        DepthLimit(path);
        return;
      }
      Frame f;
      f.path = std::move(path);
      f.depth = depth;
      f.children = StatChildren(f.path, std::move(names));
      frames_.push_back(std::move(f));
    }
  }

  // False (and the walk stops, truncated) if one more entry would exceed a
  // limit.
  bool Admit() {
    if (static_cast<uint64_t>(out_->entries_size()) >= limits_.max_entries) {
      Truncate(StrCat("catalogue truncated: more than ", limits_.max_entries,
                      " entries (the max_entries limit)"));
      return false;
    }
    if (Clock::now() > deadline_) {
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

  // After a failed call: stops the walk if the appliance is gone.
  void CheckAlive() {
    Status alive = a_.Alive();
    if (!alive.ok()) {
      stop_ = true;
      errors_.Add(StrCat("the walk stopped: ", ToStd(alive.message())));
    }
  }

  // The names in `dir`, sorted by bytes; at most the smallest room + 1 of
  // them, room being the entries max_entries still allows (as on the host
  // path: a truncated catalogue is a prefix of the full one).
  std::vector<std::string> ListNames(const std::string& dir) {
    std::vector<std::string> names;
    // guestfs_ls streams the names (any number of them). When that fails
    // the stream only says "file receive cancelled by daemon"; `ls -la` in
    // the appliance (guestfs_ll) is asked then, for its message naming the
    // cause (guestfs_readdir would hide it: it returns what it read before
    // the error as if that were all).
    char** r = a_.Call(StrCat(desc_, ": listing ", PrintableUtf8(dir)),
                       [&] { return guestfs_ls(g_, dir.c_str()); });
    if (r == nullptr) {
      std::string error = a_.LastError();
      if (a_.Alive().ok()) {
        char* ll = a_.Call(StrCat(desc_, ": listing ", PrintableUtf8(dir)),
                           [&] { return guestfs_ll(g_, dir.c_str()); });
        if (ll == nullptr) error = a_.LastError();
        free(ll);
      }
      errors_.Add(StrCat(PrintableUtf8(dir), ": read directory: ", error));
      CheckAlive();
      return names;
    }
    for (std::string& n : TakeGuestfsStrings(r)) {
      if (n.empty() || n == "." || n == ".." ||
          n.find('/') != std::string::npos) {
        errors_.Add(StrCat(PrintableUtf8(dir),
                           ": the appliance listed a bad name ", Quoted(n)));
        continue;
      }
      names.push_back(std::move(n));
    }
    const uint64_t room =
        limits_.max_entries -
        std::min<uint64_t>(limits_.max_entries,
                           static_cast<uint64_t>(out_->entries_size()));
    const size_t keep = static_cast<size_t>(
        std::min<uint64_t>(room, std::numeric_limits<uint32_t>::max()) + 1);
    if (names.size() > keep) {
      std::nth_element(names.begin(), names.begin() + keep, names.end());
      names.resize(keep);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  // lstat of every name in `dir` (one lstatnslist per 1000 names) and the
  // targets of its symlinks (one readlinklist). Empty if the stats failed.
  std::vector<Child> StatChildren(const std::string& dir,
                                  std::vector<std::string> names) {
    std::vector<Child> children;
    if (names.empty()) return children;
    std::vector<char*> argv = GuestfsStringArray(names);
    std::unique_ptr<guestfs_statns_list, StatnsListFree> stats(a_.Call(
        StrCat(desc_, ": reading the entries of ", PrintableUtf8(dir)),
        [&] { return guestfs_lstatnslist(g_, dir.c_str(), argv.data()); }));
    if (stats == nullptr || stats->len != names.size()) {
      errors_.Add(StrCat(PrintableUtf8(dir), ": stat: ",
                         stats == nullptr ? a_.LastError()
                                          : std::string("wrong answer count")));
      CheckAlive();
      return children;
    }
    std::vector<std::string> links;
    children.resize(names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      Child& c = children[i];
      c.name = std::move(names[i]);
      c.st = stats->val[i];
      c.stat_ok = c.st.st_ino != -1;  // lstatnslist's "this one failed"
      if (c.stat_ok && S_ISLNK(c.st.st_mode)) links.push_back(c.name);
    }
    if (links.empty()) return children;
    std::vector<char*> largv = GuestfsStringArray(links);
    char** r = a_.Call(
        StrCat(desc_, ": reading the symlinks of ", PrintableUtf8(dir)),
        [&] { return guestfs_readlinklist(g_, dir.c_str(), largv.data()); });
    if (r == nullptr) {
      errors_.Add(StrCat(PrintableUtf8(dir), ": readlink: ", a_.LastError()));
      CheckAlive();
      return children;
    }
    std::vector<std::string> targets = TakeGuestfsStrings(r);
    size_t k = 0;
    for (Child& c : children) {
      if (c.stat_ok && S_ISLNK(c.st.st_mode) && k < targets.size()) {
        c.target = std::move(targets[k++]);  // "" where readlink failed
      }
    }
    return children;
  }

  GuestfsAppliance& a_;
  guestfs_h* const g_;
  const uint32_t partition_;
  const std::string desc_;
  const CatalogueLimits& limits_;
  v1::FileSystemCatalogue* const out_;
  const Clock::time_point deadline_;
  std::vector<Frame> frames_;
  bool truncated_ = false;
  bool stop_ = false;
  std::string limit_message_;
  CatalogueErrors errors_;
};

}  // namespace

// ---- SandboxDisk ------------------------------------------------------------

StatusOr<std::unique_ptr<SandboxDisk>> SandboxDisk::Open(
    const SandboxDiskOptions& options) {
  if (options.nbd_socket.empty()) {
    return absl::InvalidArgumentError("sandbox disk: nbd_socket is required");
  }
  struct stat st;
  if (::stat(options.nbd_socket.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(StrCat("sandbox disk: NBD socket ",
                                             options.nbd_socket, ": ",
                                             std::strerror(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::InvalidArgumentError(
        StrCat("sandbox disk: ", options.nbd_socket, " is not a Unix socket"));
  }
  if (options.launch_timeout.count() <= 0 ||
      options.call_timeout.count() <= 0) {
    return absl::InvalidArgumentError(
        "sandbox disk: launch_timeout and call_timeout must be positive");
  }
  if (options.limits.max_depth < 0 || options.limits.deadline.count() < 0) {
    return absl::InvalidArgumentError(
        "catalogue limits: max_depth and deadline must not be negative");
  }
  GuestfsApplianceOptions appliance_options;
  appliance_options.drives.push_back(GuestfsDrive{
      .nbd_socket = options.nbd_socket, .format = "raw", .readonly = true});
  appliance_options.identifier = "cairn-sandbox";
  appliance_options.launch_timeout = options.launch_timeout;
  appliance_options.call_timeout = options.call_timeout;
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<GuestfsAppliance> appliance,
                         GuestfsAppliance::Launch(appliance_options));
  return std::unique_ptr<SandboxDisk>(
      new SandboxDisk(options, std::move(appliance)));
}

SandboxDisk::SandboxDisk(const SandboxDiskOptions& options,
                         std::unique_ptr<GuestfsAppliance> appliance)
    : options_(options), appliance_(std::move(appliance)) {}

SandboxDisk::~SandboxDisk() {
  std::lock_guard<std::mutex> lock(mu_);
  appliance_.reset();
}

pid_t SandboxDisk::appliance_pid() const {
  std::lock_guard<std::mutex> lock(mu_);
  return appliance_->pid();
}

Status SandboxDisk::ProbeVolumes() {
  if (probed_) return absl::OkStatus();
  GuestfsAppliance& a = *appliance_;
  guestfs_h* g = a.g();
  std::vector<std::string> devices;
  {
    char** d =
        a.Call("listing the disks", [&] { return guestfs_list_devices(g); });
    if (d == nullptr) {
      return a.Error(absl::StatusCode::kInternal, "listing the disks");
    }
    devices = TakeGuestfsStrings(d);
  }
  if (devices.empty()) {
    return absl::InternalError("the appliance sees no disk");
  }
  const std::string& disk = devices[0];

  char** p = a.Call("listing the partitions",
                    [&] { return guestfs_list_partitions(g); });
  if (p == nullptr) {
    return a.Error(absl::StatusCode::kInternal, "listing the partitions");
  }
  std::vector<std::string> partitions = TakeGuestfsStrings(p);

  char** f = a.Call("listing the file systems",
                    [&] { return guestfs_list_filesystems(g); });
  if (f == nullptr) {
    return a.Error(absl::StatusCode::kInternal, "listing the file systems");
  }
  std::map<std::string, std::string> filesystems;  // mountable -> type
  {
    std::vector<std::string> kv = TakeGuestfsStrings(f);
    for (size_t i = 0; i + 1 < kv.size(); i += 2)
      filesystems[kv[i]] = kv[i + 1];
  }

  // Where each partition lies. Fails for a disk without a partition table.
  std::map<int, std::pair<uint64_t, uint64_t>> extents;  // number -> off, size
  std::string parttype;
  if (!partitions.empty()) {
    std::unique_ptr<guestfs_partition_list, PartitionListFree> list(
        a.Call("reading the partition table",
               [&] { return guestfs_part_list(g, disk.c_str()); }));
    if (list != nullptr) {
      for (uint32_t i = 0; i < list->len; ++i) {
        const guestfs_partition& e = list->val[i];
        extents[e.part_num] = {e.part_start, e.part_size};
      }
    }
    parttype =
        TakeGuestfsString(a.Call("reading the partition table type", [&] {
          return guestfs_part_get_parttype(g, disk.c_str());
        }));
  }

  // Logical volumes, md and Windows dynamic volumes have no partition
  // number: they are named in the reason their containers are skipped.
  std::vector<std::string> containers;
  for (const auto& [mountable, type] : filesystems) {
    if (mountable == disk || mountable.rfind("btrfsvol:", 0) == 0) continue;
    if (std::find(partitions.begin(), partitions.end(), mountable) !=
        partitions.end()) {
      continue;
    }
    containers.push_back(StrCat(PrintableUtf8(mountable), " (", type, ")"));
  }

  auto describe_volume = [&](Volume* v, const std::string& listed_type) {
    std::string type = listed_type;
    if (type.empty()) {
      // Not in list_filesystems: a container (LVM PV, RAID member, LUKS).
      type = TakeGuestfsString(a.Call(StrCat("probing ", v->device), [&] {
        return guestfs_vfs_type(g, v->device.c_str());
      }));
    }
    if (type == "unknown") type.clear();
    v->fs_type = type;
    if (!type.empty()) {
      v->label = TakeGuestfsString(
          a.Call(StrCat("reading the label of ", v->device),
                 [&] { return guestfs_vfs_label(g, v->device.c_str()); }));
      v->uuid = TakeGuestfsString(
          a.Call(StrCat("reading the UUID of ", v->device),
                 [&] { return guestfs_vfs_uuid(g, v->device.c_str()); }));
    }
    std::string reason;
    if (type.empty()) {
      reason = "no file system recognised";
    } else if (type == "swap") {
      reason = "swap space holds no files";
    } else if (type == "LVM2_member") {
      reason =
          "LVM physical volume; its logical volumes are not catalogued (a "
          "catalogue addresses file systems by partition number)";
      if (!containers.empty()) {
        std::string names;
        for (const auto& c : containers) {
          if (!names.empty()) names += ", ";
          names += c;
        }
        reason += StrCat("; the appliance found ", names);
      }
    } else if (type.size() >= 7 &&
               type.compare(type.size() - 7, 7, "_member") == 0) {
      reason = StrCat("member of a RAID or volume set (", PrintableUtf8(type),
                      "); not catalogued");
    } else if (type == "crypto_LUKS") {
      reason = "LUKS-encrypted; not catalogued";
    }
    if (!reason.empty()) {
      v->skip_reason = StrCat(Describe(v->partition, v->fs_type, v->offset),
                              ": skipped: ", reason);
    }
  };

  std::vector<Volume> volumes;
  for (const std::string& part : partitions) {
    int number = a.Call(StrCat("numbering ", part), [&] {
      return guestfs_part_to_partnum(g, part.c_str());
    });
    if (number <= 0) continue;  // not on the disk (cannot happen: one disk)
    if (parttype == "msdos" && number <= 4) {
      int id = a.Call(StrCat("reading the MBR type of ", part), [&] {
        return guestfs_part_get_mbr_id(g, disk.c_str(), number);
      });
      if (id == 0x05 || id == 0x0f || id == 0x85) continue;  // extended
    }
    Volume v;
    v.partition = static_cast<uint32_t>(number);
    v.device = part;
    auto e = extents.find(number);
    if (e != extents.end()) {
      v.offset = e->second.first;
      v.size = e->second.second;
    }
    auto listed = filesystems.find(part);
    describe_volume(&v, listed != filesystems.end() ? listed->second : "");
    volumes.push_back(std::move(v));
  }
  if (partitions.empty()) {
    auto listed = filesystems.find(disk);
    if (listed != filesystems.end()) {
      Volume v;
      v.partition = 0;
      v.device = disk;
      int64_t size = a.Call("reading the disk size", [&] {
        return guestfs_blockdev_getsize64(g, disk.c_str());
      });
      v.size = size > 0 ? static_cast<uint64_t>(size) : 0;
      describe_volume(&v, listed->second);
      volumes.push_back(std::move(v));
    }
  }
  CAIRN_RETURN_IF_ERROR(a.Alive());
  std::sort(volumes.begin(), volumes.end(),
            [](const Volume& x, const Volume& y) {
              return x.partition < y.partition;
            });
  volumes_ = std::move(volumes);
  probed_ = true;
  return absl::OkStatus();
}

StatusOr<const SandboxDisk::Volume*> SandboxDisk::MountableVolume(
    uint32_t partition) {
  CAIRN_RETURN_IF_ERROR(ProbeVolumes());
  for (const Volume& v : volumes_) {
    if (v.partition != partition) continue;
    if (!v.skip_reason.empty()) {
      return absl::NotFoundError(
          StrCat(v.skip_reason, "; there are no files to read"));
    }
    return &v;
  }
  return absl::NotFoundError(StrCat(partition == 0
                                        ? std::string("the whole disk")
                                        : StrCat("partition ", partition),
                                    " holds no file system in this image"));
}

Status SandboxDisk::EnsureMounted(const Volume& v) {
  if (mounted_ && *mounted_ == v.device) return absl::OkStatus();
  GuestfsAppliance& a = *appliance_;
  guestfs_h* g = a.g();
  const std::string desc = Describe(v.partition, v.fs_type, v.offset);
  if (mounted_) {
    int r = a.Call(StrCat(desc, ": unmounting the previous file system"),
                   [&] { return guestfs_umount_all(g); });
    if (r == -1) {
      return a.Error(absl::StatusCode::kInternal,
                     StrCat(desc, ": unmounting the previous file system"));
    }
    mounted_.reset();
  }
  // Read-only and without journal replay, as the host path mounts.
  std::vector<std::string> attempts;
  const std::string& t = v.fs_type;
  if (t == "ext3" || t == "ext4") {
    attempts = {"ro,noload"};
  } else if (t == "xfs") {
    attempts = {"ro,norecovery"};
  } else if (t == "btrfs") {
    attempts = {"ro,rescue=nologreplay", "ro,nologreplay"};
  }
  attempts.push_back("ro");
  std::string last;
  for (const std::string& opts : attempts) {
    int r = a.Call(StrCat(desc, ": mounting it"), [&] {
      return guestfs_mount_options(g, opts.c_str(), v.device.c_str(), "/");
    });
    if (r == 0) {
      mounted_ = v.device;
      return absl::OkStatus();
    }
    Status alive = a.Alive();
    if (!alive.ok()) {
      return a.Error(absl::StatusCode::kUnavailable,
                     StrCat(desc, ": mounting it"));
    }
    last = a.LastError();
  }
  return absl::FailedPreconditionError(
      StrCat(desc, ": cannot be mounted read-only in the appliance: ", last));
}

Status SandboxDisk::Walk(const Volume& v, v1::FileSystemCatalogue* out) {
  SandboxWalker walker(appliance_.get(), v.partition,
                       Describe(v.partition, v.fs_type, v.offset),
                       options_.limits, out);
  return walker.Run();
}

StatusOr<v1::FileCatalogue> SandboxDisk::Catalogue(
    const std::string& backup_id) {
  std::lock_guard<std::mutex> lock(mu_);
  GuestfsAppliance& a = *appliance_;
  CAIRN_RETURN_IF_ERROR(a.Alive());
  CAIRN_RETURN_IF_ERROR(ProbeVolumes());
  v1::FileCatalogue catalogue;
  catalogue.set_backup_id(backup_id);
  catalogue.set_created_unix_us(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::string stopped;  // non-empty once the appliance is gone: why
  for (const Volume& v : volumes_) {
    v1::FileSystemCatalogue fs;
    fs.set_partition(v.partition);
    fs.set_offset(v.offset);
    fs.set_size(v.size);
    fs.set_fs_type(PrintableUtf8(v.fs_type));
    fs.set_label(PrintableUtf8(v.label));
    fs.set_uuid(PrintableUtf8(v.uuid));
    const std::string desc = Describe(v.partition, v.fs_type, v.offset);
    if (!v.skip_reason.empty()) {
      fs.set_error(v.skip_reason);
      *catalogue.add_skipped() = std::move(fs);
      continue;
    }
    if (!stopped.empty()) {
      fs.set_error(StrCat(desc, ": not catalogued: ", stopped));
      *catalogue.add_skipped() = std::move(fs);
      continue;
    }
    Status mounted = EnsureMounted(v);
    Status walked = mounted.ok() ? Walk(v, &fs) : mounted;
    if (walked.ok()) {
      *catalogue.add_filesystems() = std::move(fs);
    } else {
      fs.clear_entries();
      fs.set_error(std::string(ToStd(walked.message())));
      *catalogue.add_skipped() = std::move(fs);
    }
    Status alive = a.Alive();
    if (!alive.ok()) {
      stopped = StrCat("the appliance stopped while cataloguing ", desc, " (",
                       ToStd(alive.message()), ")");
      mounted_.reset();
    }
  }
  return catalogue;
}

StatusOr<uint64_t> SandboxDisk::CheckRegularFile(const Volume& v,
                                                 const std::string& path) {
  GuestfsAppliance& a = *appliance_;
  guestfs_h* g = a.g();
  const std::string where = v.partition == 0
                                ? std::string("the whole-disk file system")
                                : StrCat("partition ", v.partition);
  if (path == "/") {
    return absl::FailedPreconditionError(
        StrCat("'/' on ", where, " is a directory"));
  }
  size_t i = 1;
  while (true) {
    size_t j = path.find('/', i);
    const bool last = j == std::string::npos;
    const std::string prefix = last ? path : path.substr(0, j);
    std::unique_ptr<struct guestfs_statns, StatnsFree> st(
        a.Call(StrCat("checking ", PrintableUtf8(prefix), " on ", where),
               [&] { return guestfs_lstatns(g, prefix.c_str()); }));
    if (st == nullptr) {
      int err = a.LastErrno();
      CAIRN_RETURN_IF_ERROR(a.Alive());
      if (err == ENOENT || err == ENOTDIR) {
        return absl::NotFoundError(
            StrCat(Quoted(path), " not found on ", where));
      }
      absl::StatusCode code = (err == EIO || err == EUCLEAN || err == EBADMSG)
                                  ? absl::StatusCode::kDataLoss
                                  : absl::StatusCode::kInternal;
      return a.Error(code, StrCat("lstat ", Quoted(prefix), " on ", where));
    }
    if (S_ISLNK(st->st_mode)) {
      std::string target = TakeGuestfsString(
          a.Call(StrCat("reading the symlink ", PrintableUtf8(prefix)),
                 [&] { return guestfs_readlink(g, prefix.c_str()); }));
      return absl::FailedPreconditionError(
          StrCat(Quoted(prefix), " on ", where, " is a symbolic link to ",
                 Quoted(target), "; symbolic links are not followed"));
    }
    if (last) {
      if (S_ISDIR(st->st_mode)) {
        return absl::FailedPreconditionError(
            StrCat(Quoted(path), " on ", where, " is a directory"));
      }
      if (!S_ISREG(st->st_mode)) {
        return absl::FailedPreconditionError(
            StrCat(Quoted(path), " on ", where, " is not a regular file"));
      }
      return static_cast<uint64_t>(st->st_size);
    }
    if (!S_ISDIR(st->st_mode)) {
      return absl::NotFoundError(StrCat(Quoted(path), " not found on ", where,
                                        ": ", Quoted(prefix),
                                        " is not a directory"));
    }
    i = j + 1;
  }
}

Status SandboxDisk::Read(uint32_t partition, const std::string& path,
                         uint64_t offset, uint64_t length,
                         const std::function<Status(std::string_view)>& sink) {
  CAIRN_ASSIGN_OR_RETURN(const std::string normalized,
                         NormalizeBrowsePath(path));
  uint64_t size = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    CAIRN_RETURN_IF_ERROR(appliance_->Alive());
    CAIRN_ASSIGN_OR_RETURN(const Volume* v, MountableVolume(partition));
    CAIRN_RETURN_IF_ERROR(EnsureMounted(*v));
    CAIRN_ASSIGN_OR_RETURN(size, CheckRegularFile(*v, normalized));
  }
  if (offset > size) {
    return absl::OutOfRangeError(
        StrCat("offset ", offset, " is past the end of ", Quoted(normalized),
               " (", size, " bytes)"));
  }
  const uint64_t end =
      (length == 0 || length > size - offset) ? size : offset + length;
  uint64_t pos = offset;
  while (pos < end) {
    const int want =
        static_cast<int>(std::min<uint64_t>(kReadPiece, end - pos));
    std::string data;
    {
      // The image is read-only, so what was checked above still holds after
      // another call remounted in between.
      std::lock_guard<std::mutex> lock(mu_);
      GuestfsAppliance& a = *appliance_;
      CAIRN_RETURN_IF_ERROR(a.Alive());
      CAIRN_ASSIGN_OR_RETURN(const Volume* v, MountableVolume(partition));
      CAIRN_RETURN_IF_ERROR(EnsureMounted(*v));
      size_t got = 0;
      const std::string what =
          StrCat("reading ", Quoted(normalized), " at offset ", pos);
      char* buf = a.Call(what, [&] {
        return guestfs_pread(a.g(), normalized.c_str(), want,
                             static_cast<int64_t>(pos), &got);
      });
      if (buf == nullptr) {
        int err = a.LastErrno();
        absl::StatusCode code =
            (err == EIO || err == EUCLEAN || err == EBADMSG || err == 0)
                ? absl::StatusCode::kDataLoss
                : absl::StatusCode::kInternal;
        return a.Error(code, what);
      }
      data.assign(buf, got);
      free(buf);
    }
    if (data.empty()) {
      return absl::DataLossError(StrCat(
          Quoted(normalized), " ended early at byte ", pos, " of ", size));
    }
    pos += data.size();
    CAIRN_RETURN_IF_ERROR(sink(data));
  }
  return absl::OkStatus();
}

}  // namespace cairn
