#include "agent/offline_profile_collector.h"

#include <guestfs.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include "agent/profile_collector.h"
#include "agent/root_dir.h"
#include "common/strings.h"

namespace cairn {
namespace {

constexpr int64_t kMaxSmallFile = 1 << 20;    // RootDir's default read
constexpr int64_t kMaxIndexFile = 32 << 20;   // as the live collector
constexpr int64_t kMaxDpkgStatus = 64 << 20;  // as the live collector
constexpr int64_t kMaxInitramfs = int64_t{1} << 30;
constexpr size_t kMaxDirEntries = 10000;

constexpr char kEspGuid[] = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
constexpr char kBiosBootGuid[] = "21686148-6449-6e6f-744e-656564454649";

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Takes ownership of a NULL-terminated string list from libguestfs.
std::vector<std::string> TakeStrings(char** v) {
  std::vector<std::string> out;
  if (v == nullptr) return out;
  for (char** p = v; *p != nullptr; ++p) {
    out.emplace_back(*p);
    free(*p);
  }
  free(v);
  return out;
}

// Takes ownership of a string from libguestfs; "" for NULL.
std::string TakeString(char* s) {
  if (s == nullptr) return "";
  std::string out(s);
  free(s);
  return out;
}

// A directory entry name from the guest that is safe to use as one host
// path component.
bool SafeName(std::string_view n) {
  return !n.empty() && n != "." && n != ".." &&
         n.find('/') == std::string_view::npos &&
         n.find('\0') == std::string_view::npos && n.size() <= 255;
}

bool StartsWith(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// One libguestfs handle on one image and the temporary tree its files are
// copied into; both are released by the destructor.
class OfflineCollector {
 public:
  OfflineCollector(std::string image, const OfflineCollectOptions& options)
      : image_(std::move(image)), options_(options) {}

  ~OfflineCollector() {
    if (g_ != nullptr) guestfs_close(g_);
    if (!tree_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(tree_, ec);
    }
  }

  OfflineCollector(const OfflineCollector&) = delete;
  OfflineCollector& operator=(const OfflineCollector&) = delete;

  StatusOr<v1::HardwareProfile> Run() {
    CAIRN_RETURN_IF_ERROR(CheckImage());
    CAIRN_RETURN_IF_ERROR(Launch());
    CAIRN_RETURN_IF_ERROR(MountOs());
    CAIRN_RETURN_IF_ERROR(MakeTree());
    CAIRN_RETURN_IF_ERROR(CopyFiles());

    CollectOptions o;
    o.root = tree_;
    o.record_module_indices = options_.record_module_indices;
    o.read_initramfs = options_.read_initramfs;
    o.collected_unix_us = options_.collected_unix_us;
    o.read_machine_state = false;
    o.collected_from = StrCat("image:", image_);
    auto p = CollectHardwareProfile(o);
    if (!p.ok()) {
      return Status(p.status().code(),
                    StrCat(image_, ": ", ToStd(p.status().message())));
    }
    CAIRN_RETURN_IF_ERROR(CollectDisksAndBootMode(&*p));
    for (auto& w : warnings_) p->add_warnings(std::move(w));
    return std::move(*p);
  }

 private:
  Status GuestfsError(std::string_view what) {
    const char* e = g_ != nullptr ? guestfs_last_error(g_) : nullptr;
    return absl::InternalError(StrCat(image_, ": libguestfs: ", what, ": ",
                                      e != nullptr ? e : "unknown error"));
  }

  Status CheckImage() {
    struct stat st;
    if (stat(image_.c_str(), &st) != 0) {
      return absl::NotFoundError(StrCat(image_, ": no such disk image"));
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
      return absl::InvalidArgumentError(
          StrCat(image_, ": not a regular file or block device"));
    }
    return absl::OkStatus();
  }

  Status Launch() {
    g_ = guestfs_create();
    if (g_ == nullptr) {
      return absl::InternalError(
          StrCat(image_, ": libguestfs: cannot create a handle"));
    }
    // Errors are reported through guestfs_last_error, not printed.
    guestfs_set_error_handler(g_, nullptr, nullptr);
    int r;
    if (options_.format.empty()) {
      r = guestfs_add_drive_opts(g_, image_.c_str(),
                                 GUESTFS_ADD_DRIVE_OPTS_READONLY, 1, -1);
    } else {
      r = guestfs_add_drive_opts(
          g_, image_.c_str(), GUESTFS_ADD_DRIVE_OPTS_READONLY, 1,
          GUESTFS_ADD_DRIVE_OPTS_FORMAT, options_.format.c_str(), -1);
    }
    if (r == -1) return GuestfsError("adding the image read-only");
    if (guestfs_launch(g_) == -1) return GuestfsError("launching appliance");
    return absl::OkStatus();
  }

  Status MountOs() {
    char** roots = guestfs_inspect_os(g_);
    if (roots == nullptr) return GuestfsError("inspecting the image");
    std::vector<std::string> r = TakeStrings(roots);
    if (r.empty()) {
      return absl::FailedPreconditionError(
          StrCat(image_,
                 ": no operating system found (libguestfs inspection found "
                 "no root file system)"));
    }
    if (r.size() > 1) {
      warnings_.push_back(StrCat("the image holds ", r.size(),
                                 " operating systems; profiled the one on ",
                                 r[0]));
    }
    std::string type = TakeString(guestfs_inspect_get_type(g_, r[0].c_str()));
    if (type != "linux") {
      return absl::FailedPreconditionError(
          StrCat(image_, ": the operating system on ", r[0], " is '", type,
                 "'; only Linux is profiled"));
    }
    char** mps = guestfs_inspect_get_mountpoints(g_, r[0].c_str());
    if (mps == nullptr) return GuestfsError("listing the mount points");
    std::vector<std::string> kv = TakeStrings(mps);
    std::vector<std::pair<std::string, std::string>> mounts;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      mounts.emplace_back(kv[i], kv[i + 1]);
    }
    // Parents before children: "/" before "/boot" before "/boot/efi".
    std::sort(mounts.begin(), mounts.end(), [](const auto& a, const auto& b) {
      return a.first.size() < b.first.size();
    });
    bool root_mounted = false;
    for (const auto& [mp, dev] : mounts) {
      if (guestfs_mount_ro(g_, dev.c_str(), mp.c_str()) == -1) {
        if (mp == "/") return GuestfsError(StrCat("mounting ", dev, " on /"));
        const char* e = guestfs_last_error(g_);
        warnings_.push_back(StrCat("could not mount ", dev, " on ", mp,
                                   " read-only: ", e != nullptr ? e : "?"));
        continue;
      }
      if (mp == "/") root_mounted = true;
    }
    if (!root_mounted) {
      return absl::FailedPreconditionError(
          StrCat(image_, ": inspection found no root mount point for ", r[0]));
    }
    return absl::OkStatus();
  }

  Status MakeTree() {
    std::string base = options_.temp_dir;
    if (base.empty()) {
      const char* t = getenv("TMPDIR");
      base = (t != nullptr && *t != '\0') ? t : "/tmp";
    }
    std::string tmpl = StrCat(base, "/cairn-offline-profile-XXXXXX");
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
      return absl::InternalError(
          StrCat(image_, ": cannot create a temporary directory under ", base));
    }
    tree_ = buf.data();
    return absl::OkStatus();
  }

  // The host path of guest path `guest` (absolute, built from constants and
  // SafeName components only) in the tree, with its parents created.
  StatusOr<std::string> HostPath(std::string_view guest) {
    std::string host = StrCat(tree_, guest);
    std::error_code ec;
    std::filesystem::create_directories(
        std::filesystem::path(host).parent_path(), ec);
    if (ec) {
      return absl::InternalError(StrCat(image_, ": creating the directory for ",
                                        guest, " in ", tree_, ": ",
                                        ec.message()));
    }
    return host;
  }

  // 1 yes, 0 no (absent, dangling link, other type). A failed check is a
  // "no" with a warning: the file then counts as absent.
  bool IsKind(const std::string& guest, bool dir) {
    int r =
        dir ? guestfs_is_dir_opts(g_, guest.c_str(),
                                  GUESTFS_IS_DIR_OPTS_FOLLOWSYMLINKS, 1, -1)
            : guestfs_is_file_opts(g_, guest.c_str(),
                                   GUESTFS_IS_FILE_OPTS_FOLLOWSYMLINKS, 1, -1);
    if (r == -1) {
      const char* e = guestfs_last_error(g_);
      warnings_.push_back(
          StrCat("cannot check ", guest, ": ", e != nullptr ? e : "?"));
      return false;
    }
    return r == 1;
  }

  // Downloads the regular file (after following guest symlinks inside the
  // appliance) at `guest` into the tree. Absent is not an error; larger
  // than `limit` is ResourceExhausted.
  Status CopyFile(const std::string& guest, int64_t limit) {
    if (!IsKind(guest, /*dir=*/false)) return absl::OkStatus();
    int64_t size = guestfs_filesize(g_, guest.c_str());
    if (size == -1) return GuestfsError(StrCat("size of ", guest));
    if (size > limit) {
      return absl::ResourceExhaustedError(StrCat(image_, ": ", guest, " is ",
                                                 size, " bytes, more than the ",
                                                 limit, "-byte limit"));
    }
    CAIRN_ASSIGN_OR_RETURN(std::string host, HostPath(guest));
    if (guestfs_download(g_, guest.c_str(), host.c_str()) == -1) {
      return GuestfsError(StrCat("downloading ", guest));
    }
    return absl::OkStatus();
  }

  // An empty regular file standing for a guest file whose name is all the
  // collector uses (kernel images, EFI binaries, enabled-unit links).
  Status Placeholder(const std::string& guest) {
    CAIRN_ASSIGN_OR_RETURN(std::string host, HostPath(guest));
    FILE* f = std::fopen(host.c_str(), "wx");
    if (f == nullptr) {
      return absl::InternalError(
          StrCat(image_, ": cannot create ", host, " for ", guest));
    }
    std::fclose(f);
    return absl::OkStatus();
  }

  // Safe entry names of the guest directory `guest`; empty when it is not
  // a directory.
  StatusOr<std::vector<std::string>> List(const std::string& guest) {
    std::vector<std::string> out;
    if (!IsKind(guest, /*dir=*/true)) return out;
    char** names = guestfs_ls(g_, guest.c_str());
    if (names == nullptr) return GuestfsError(StrCat("listing ", guest));
    for (std::string& n : TakeStrings(names)) {
      if (!SafeName(n)) {
        warnings_.push_back(StrCat(guest,
                                   ": skipped an entry with an unsafe "
                                   "name"));
        continue;
      }
      if (out.size() >= kMaxDirEntries) {
        return absl::ResourceExhaustedError(StrCat(image_, ": ", guest,
                                                   " has more than ",
                                                   kMaxDirEntries, " entries"));
      }
      out.push_back(std::move(n));
    }
    return out;
  }

  Status CopyDirFiles(const std::string& dir, int64_t limit) {
    CAIRN_ASSIGN_OR_RETURN(auto names, List(dir));
    for (const auto& n : names) {
      CAIRN_RETURN_IF_ERROR(CopyFile(StrCat(dir, "/", n), limit));
    }
    return absl::OkStatus();
  }

  Status CopyFiles() {
    for (const char* f :
         {"/etc/os-release", "/usr/lib/os-release", "/etc/hostname",
          "/etc/fstab", "/etc/crypttab", "/etc/network/interfaces",
          "/etc/resolv.conf", "/etc/default/grub", "/boot/grub/grub.cfg",
          "/boot/grub/device.map"}) {
      CAIRN_RETURN_IF_ERROR(CopyFile(f, kMaxSmallFile));
    }
    CAIRN_RETURN_IF_ERROR(CopyFile("/var/lib/dpkg/status", kMaxDpkgStatus));
    for (const char* d :
         {"/etc/network/interfaces.d", "/etc/netplan",
          "/etc/NetworkManager/system-connections", "/etc/systemd/network"}) {
      CAIRN_RETURN_IF_ERROR(CopyDirFiles(d, kMaxSmallFile));
    }
    // Enabled units: only the names in *.wants matter.
    CAIRN_ASSIGN_OR_RETURN(auto sys, List("/etc/systemd/system"));
    for (const auto& d : sys) {
      if (!EndsWith(d, ".wants")) continue;
      std::string dir = StrCat("/etc/systemd/system/", d);
      CAIRN_ASSIGN_OR_RETURN(auto units, List(dir));
      for (const auto& u : units) {
        CAIRN_RETURN_IF_ERROR(Placeholder(StrCat(dir, "/", u)));
      }
    }
    // Kernels and initramfs images.
    CAIRN_ASSIGN_OR_RETURN(auto boot, List("/boot"));
    for (const auto& n : boot) {
      std::string path = StrCat("/boot/", n);
      if (StartsWith(n, "vmlinuz-")) {
        if (IsKind(path, false)) CAIRN_RETURN_IF_ERROR(Placeholder(path));
      } else if (StartsWith(n, "initrd.img-") && options_.read_initramfs) {
        CAIRN_RETURN_IF_ERROR(CopyFile(path, kMaxInitramfs));
      }
    }
    CAIRN_ASSIGN_OR_RETURN(auto kernels, List("/lib/modules"));
    for (const auto& v : kernels) {
      std::string dir = StrCat("/lib/modules/", v);
      if (!IsKind(dir, true)) continue;
      // The directory itself marks an installed kernel.
      CAIRN_ASSIGN_OR_RETURN(std::string host, HostPath(StrCat(dir, "/.")));
      static_cast<void>(host);
      for (const char* f : {"modules.dep", "modules.alias", "modules.builtin",
                            "modules.builtin.modinfo", "modules.softdep"}) {
        CAIRN_RETURN_IF_ERROR(CopyFile(StrCat(dir, "/", f), kMaxIndexFile));
      }
    }
    // EFI binaries on the ESP: names only.
    CAIRN_ASSIGN_OR_RETURN(auto efi, List("/boot/efi/EFI"));
    for (const auto& d : efi) {
      std::string dir = StrCat("/boot/efi/EFI/", d);
      CAIRN_ASSIGN_OR_RETURN(auto files, List(dir));
      for (const auto& f : files) {
        std::string path = StrCat(dir, "/", f);
        if ((EndsWith(f, ".efi") || EndsWith(f, ".EFI")) && IsKind(path, false))
          CAIRN_RETURN_IF_ERROR(Placeholder(path));
      }
    }
    return absl::OkStatus();
  }

  // The image's disks and partitions, and the boot mode their partition
  // tables imply.
  Status CollectDisksAndBootMode(v1::HardwareProfile* p) {
    char** devs = guestfs_list_devices(g_);
    if (devs == nullptr) return GuestfsError("listing devices");
    bool esp = false, bios_boot = false, any_table = false;
    for (const std::string& dev : TakeStrings(devs)) {
      v1::Disk* d = p->add_disks();
      d->set_name(std::string(Basename(dev)));
      int64_t size = guestfs_blockdev_getsize64(g_, dev.c_str());
      if (size == -1) return GuestfsError(StrCat("size of ", dev));
      d->set_size_bytes(static_cast<uint64_t>(size));
      int ss = guestfs_blockdev_getss(g_, dev.c_str());
      if (ss > 0) d->set_logical_sector_size(static_cast<uint32_t>(ss));
      // The physical sector size is the host's business, not the image's.
      // No partition table is an error from libguestfs, not a failure.
      std::string table =
          TakeString(guestfs_part_get_parttype(g_, dev.c_str()));
      if (table.empty()) continue;
      any_table = true;
      bool gpt = table == "gpt";
      d->set_partition_table_type(table == "msdos" ? "dos" : table);
      if (gpt) {
        d->set_partition_table_uuid(
            Lower(TakeString(guestfs_part_get_disk_guid(g_, dev.c_str()))));
      }
      guestfs_partition_list* parts = guestfs_part_list(g_, dev.c_str());
      if (parts == nullptr) return GuestfsError(StrCat("partitions of ", dev));
      for (uint32_t i = 0; i < parts->len; ++i) {
        const guestfs_partition& gp = parts->val[i];
        v1::Partition* pt = d->add_partitions();
        pt->set_name(StrCat(d->name(), gp.part_num));
        pt->set_number(static_cast<uint32_t>(gp.part_num));
        pt->set_start_bytes(gp.part_start);
        pt->set_size_bytes(gp.part_size);
        std::string part_dev = StrCat(dev, gp.part_num);
        pt->set_fs_type(TakeString(guestfs_vfs_type(g_, part_dev.c_str())));
        if (!pt->fs_type().empty()) {
          pt->set_fs_uuid(TakeString(guestfs_vfs_uuid(g_, part_dev.c_str())));
          pt->set_fs_label(TakeString(guestfs_vfs_label(g_, part_dev.c_str())));
        }
        if (gpt) {
          pt->set_part_type(Lower(TakeString(
              guestfs_part_get_gpt_type(g_, dev.c_str(), gp.part_num))));
          pt->set_part_uuid(Lower(TakeString(
              guestfs_part_get_gpt_guid(g_, dev.c_str(), gp.part_num))));
          if (pt->part_type() == kEspGuid) esp = true;
          if (pt->part_type() == kBiosBootGuid) bios_boot = true;
        } else if (table == "msdos") {
          int id = guestfs_part_get_mbr_id(g_, dev.c_str(), gp.part_num);
          if (id >= 0) {
            char hex[16];
            std::snprintf(hex, sizeof hex, "0x%x", id);
            pt->set_part_type(hex);
            if (id == 0xef) esp = true;
          }
        }
      }
      guestfs_free_partition_list(parts);
    }
    v1::Firmware* fw = p->mutable_firmware();
    if (esp) {
      fw->set_mode(v1::FIRMWARE_MODE_UEFI);
      fw->set_secure_boot(v1::SECURE_BOOT_UNKNOWN);
      if (bios_boot) {
        warnings_.push_back(
            "the image has both an EFI System Partition and a BIOS boot "
            "partition; recorded UEFI");
      }
    } else if (any_table) {
      fw->set_mode(v1::FIRMWARE_MODE_BIOS);
      fw->set_secure_boot(v1::SECURE_BOOT_NOT_APPLICABLE);
    } else {
      warnings_.push_back("no partition table: the boot mode is unknown");
    }
    warnings_.push_back(
        "offline profile: disk names are the libguestfs appliance's (sda, "
        "sdb, ...), not necessarily the machine's; CPU, memory, PCI devices, "
        "NICs and the running kernel are unknown");
    return absl::OkStatus();
  }

  const std::string image_;
  const OfflineCollectOptions& options_;
  guestfs_h* g_ = nullptr;
  std::string tree_;
  std::vector<std::string> warnings_;
};

}  // namespace

StatusOr<v1::HardwareProfile> CollectOfflineProfile(
    const std::string& image_path, const OfflineCollectOptions& options) {
  OfflineCollector c(image_path, options);
  return c.Run();
}

}  // namespace cairn
