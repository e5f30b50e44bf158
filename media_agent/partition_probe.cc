#include "media_agent/partition_probe.h"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <type_traits>

#include "common/strings.h"

namespace cairn {
namespace {

struct ProbeDeleter {
  void operator()(blkid_probe p) const { blkid_free_probe(p); }
};
using Probe = std::unique_ptr<std::remove_pointer_t<blkid_probe>, ProbeDeleter>;

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

// A probe over bytes [offset, offset + size) of `fd` (size 0: to the end).
StatusOr<Probe> NewProbe(int fd, uint64_t offset, uint64_t size,
                         std::string_view what) {
  Probe probe(blkid_new_probe());
  if (probe == nullptr) {
    return absl::ResourceExhaustedError(
        StrCat("blkid_new_probe failed for ", what));
  }
  if (blkid_probe_set_device(probe.get(), fd, static_cast<blkid_loff_t>(offset),
                             static_cast<blkid_loff_t>(size)) != 0) {
    int err = errno != 0 ? errno : EIO;
    return ErrnoToStatus(err, "blkid_probe_set_device", what);
  }
  return probe;
}

std::string LookUp(blkid_probe probe, const char* name) {
  const char* value = nullptr;
  size_t len = 0;
  if (blkid_probe_lookup_value(probe, name, &value, &len) != 0 ||
      value == nullptr) {
    return "";
  }
  // blkid counts the terminating NUL in `len`.
  std::string out(value, len);
  while (!out.empty() && out.back() == '\0') out.pop_back();
  return out;
}

// Fills fs_type/label/uuid (or probe_error) of `p` from the superblocks in
// its range.
void ProbeContent(int fd, PartitionInfo* p) {
  std::string what = DescribePartition(*p);
  errno = 0;
  auto probe = NewProbe(fd, p->offset, p->size, what);
  if (!probe.ok()) {
    p->probe_error = std::string(ToStd(probe.status().message()));
    return;
  }
  blkid_probe pr = probe->get();
  blkid_probe_enable_partitions(pr, 0);
  blkid_probe_enable_superblocks(pr, 1);
  blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL |
                                            BLKID_SUBLKS_UUID |
                                            BLKID_SUBLKS_USAGE);
  errno = 0;
  int rc = blkid_do_safeprobe(pr);
  if (rc == 0) {
    p->fs_type = LookUp(pr, "TYPE");
    p->label = LookUp(pr, "LABEL");
    p->uuid = LookUp(pr, "UUID");
  } else if (rc == -2) {
    p->probe_error =
        "more than one file system signature found (ambiguous content)";
  } else if (rc < 0) {
    int err = errno != 0 ? errno : EIO;
    p->probe_error = StrCat("cannot read the range: ", std::strerror(err));
  }
}

StatusOr<uint64_t> DiskSize(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoToStatus(errno, "fstat", path);
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) {
      return ErrnoToStatus(errno, "ioctl(BLKGETSIZE64)", path);
    }
    return bytes;
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        StrCat(path, " is neither a regular file nor a block device"));
  }
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace

std::string DescribePartition(const PartitionInfo& p) {
  std::string content = p.fs_type.empty() ? "unknown content" : p.fs_type;
  if (p.number == 0) {
    return StrCat("whole disk (", content, " at offset ", p.offset, ")");
  }
  return StrCat("partition ", p.number, " (", content, " at offset ", p.offset,
                ")");
}

StatusOr<std::vector<PartitionInfo>> ProbePartitions(
    const std::string& disk_path) {
  int fd = ::open(disk_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open", disk_path);
  FdCloser closer(fd);
  CAIRN_ASSIGN_OR_RETURN(uint64_t disk_size, DiskSize(fd, disk_path));

  // 1. Is there a partition table? (Partitions chain only, so a file system
  // signature does not count as a conflict.)
  std::string what = StrCat("partition table of ", disk_path);
  CAIRN_ASSIGN_OR_RETURN(Probe table_probe, NewProbe(fd, 0, 0, what));
  blkid_probe_enable_superblocks(table_probe.get(), 0);
  blkid_probe_enable_partitions(table_probe.get(), 1);
  errno = 0;
  int rc = blkid_do_safeprobe(table_probe.get());
  if (rc == -2) {
    return absl::DataLossError(
        StrCat(disk_path,
               ": more than one partition table signature (ambiguous); "
               "refusing to guess"));
  }
  if (rc < 0) {
    int err = errno != 0 ? errno : EIO;
    return absl::DataLossError(StrCat("cannot read the partition table of ",
                                      disk_path, ": ", std::strerror(err)));
  }

  std::vector<PartitionInfo> out;
  if (rc == 1) {
    // No partition table: a file system on the whole disk, or nothing.
    PartitionInfo whole;
    whole.number = 0;
    whole.offset = 0;
    whole.size = disk_size;
    ProbeContent(fd, &whole);
    if (!whole.fs_type.empty() || !whole.probe_error.empty()) {
      out.push_back(std::move(whole));
    }
    return out;
  }

  // 2. The partition list (a fresh probe: libblkid builds the binary list by
  // probing again).
  CAIRN_ASSIGN_OR_RETURN(Probe list_probe, NewProbe(fd, 0, 0, what));
  blkid_probe_enable_superblocks(list_probe.get(), 0);
  blkid_probe_enable_partitions(list_probe.get(), 1);
  blkid_probe_set_partitions_flags(list_probe.get(), BLKID_PARTS_ENTRY_DETAILS);
  errno = 0;
  blkid_partlist list = blkid_probe_get_partitions(list_probe.get());
  if (list == nullptr) {
    int err = errno != 0 ? errno : EIO;
    return absl::DataLossError(StrCat("cannot list the partitions of ",
                                      disk_path, ": ", std::strerror(err)));
  }
  blkid_parttable table = blkid_partlist_get_table(list);
  const char* table_type =
      table != nullptr ? blkid_parttable_get_type(table) : nullptr;
  bool gpt = table_type != nullptr && std::string_view(table_type) == "gpt";
  int count = blkid_partlist_numof_partitions(list);
  for (int i = 0; i < count; ++i) {
    blkid_partition part = blkid_partlist_get_partition(list, i);
    if (part == nullptr) continue;
    if (blkid_partition_is_extended(part)) continue;  // a container
    PartitionInfo p;
    int number = blkid_partition_get_partno(part);
    p.number = number > 0 ? static_cast<uint32_t>(number) : 0;
    blkid_loff_t start = blkid_partition_get_start(part);  // 512-byte units
    blkid_loff_t length = blkid_partition_get_size(part);
    p.offset = start > 0 ? static_cast<uint64_t>(start) * 512 : 0;
    uint64_t size = length > 0 ? static_cast<uint64_t>(length) * 512 : 0;
    if (p.offset >= disk_size) {
      p.size = 0;
    } else {
      p.size = std::min(size, disk_size - p.offset);
    }
    const char* type_string = blkid_partition_get_type_string(part);
    if (gpt && type_string != nullptr) {
      p.part_type = type_string;
    } else {
      char hex[16];
      std::snprintf(hex, sizeof(hex), "0x%02x",
                    static_cast<unsigned>(blkid_partition_get_type(part)));
      p.part_type = hex;
    }
    if (p.size > 0) {
      ProbeContent(fd, &p);
    } else {
      p.probe_error = "the partition lies beyond the end of the disk";
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace cairn
