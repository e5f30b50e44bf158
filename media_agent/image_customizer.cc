#include "media_agent/image_customizer.h"

#include <guestfs.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "absl/time/time.h"
#include "common/strings.h"
#include "common/subprocess.h"
#include "common/utf8.h"
#include "media_agent/disk_shrink.h"
#include "media_agent/guest_config_edits.h"
#include "media_agent/guestfs_appliance.h"
#include "nlohmann/json.hpp"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool IsValidKernelVersion(std::string_view v) {
  if (v.empty() || v.size() > 128 || v.front() == '.' || v.front() == '-') {
    return false;
  }
  return std::all_of(v.begin(), v.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
           c == '-' || c == '_' || c == '+' || c == '~';
  });
}

bool IsValidUnitName(std::string_view u) {
  static const char* kSuffixes[] = {".service", ".socket", ".timer",
                                    ".path",    ".target", ".mount"};
  if (u.empty() || u.size() > 255 || u.front() == '-' || u.front() == '.') {
    return false;
  }
  bool chars = std::all_of(u.begin(), u.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '@' ||
           c == '.' || c == '_' || c == ':' || c == '-' || c == '\\';
  });
  if (!chars) return false;
  for (const char* s : kSuffixes) {
    std::string_view suffix(s);
    if (u.size() > suffix.size() &&
        u.substr(u.size() - suffix.size()) == suffix) {
      return true;
    }
  }
  return false;
}

// Prefix of a command for the appliance's debug shell (which, unlike
// libguestfs's own calls, does not wait for udev): waits for udev and for
// the device node `dev` (built by the caller, never from input) to exist.
std::string SettleUdevFor(std::string_view dev) {
  return StrCat("udevadm settle; for i in 1 2 3 4 5 6 7 8 9 10; do [ -b ", dev,
                " ] && break; sleep 1; done; ");
}

struct PartitionListFree {
  void operator()(guestfs_partition_list* l) const {
    guestfs_free_partition_list(l);
  }
};

// What GRUB's generated configuration boots.
struct GrubMenu {
  std::string default_value;  // `set default="..."` (not "${next_entry}")
  std::string first_kernel;   // version booted by the first menu entry
  std::string submenu_id;     // of the submenu holding `entry_id`, if any
  std::string entry_id;       // the menu entry id booting `kernel`
};

// The quoted id after "$menuentry_id_option '" on a menuentry/submenu line.
std::string MenuEntryId(std::string_view line) {
  constexpr std::string_view kOpt = "$menuentry_id_option '";
  size_t at = line.find(kOpt);
  if (at == std::string_view::npos) return "";
  at += kOpt.size();
  size_t end = line.find('\'', at);
  if (end == std::string_view::npos) return "";
  return std::string(line.substr(at, end - at));
}

GrubMenu ParseGrubMenu(std::string_view cfg, const std::string& kernel) {
  GrubMenu m;
  int depth = 0;
  int entry_depth = -1, submenu_depth = -1;  // -1: not inside one
  std::string entry, submenu;
  for (std::string_view raw : SplitLines(cfg)) {
    std::string_view l = TrimSpace(raw);
    if (l.substr(0, 13) == "set default=\"" && m.default_value.empty()) {
      std::string_view v = l.substr(13);
      if (!v.empty() && v.back() == '"') v.remove_suffix(1);
      if (v != "${next_entry}") m.default_value = std::string(v);
    }
    if (l.substr(0, 8) == "submenu ") {
      submenu = MenuEntryId(l);
      submenu_depth = depth;
    } else if (l.substr(0, 10) == "menuentry ") {
      entry = MenuEntryId(l);
      entry_depth = depth;
    } else if (entry_depth >= 0 &&
               (l.substr(0, 6) == "linux " || l.substr(0, 6) == "linux\t" ||
                l.substr(0, 8) == "linux16 " ||
                l.substr(0, 9) == "linuxefi ")) {
      std::string_view rest = TrimSpace(l.substr(l.find_first_of(" \t")));
      std::string_view path = rest.substr(0, rest.find_first_of(" \t"));
      size_t v = path.rfind("vmlinuz-");
      std::string version =
          v == std::string_view::npos ? "" : std::string(path.substr(v + 8));
      if (m.first_kernel.empty()) m.first_kernel = version;
      if (version == kernel && m.entry_id.empty() && !entry.empty() &&
          entry.find("recovery") == std::string::npos) {
        m.entry_id = entry;
        m.submenu_id = submenu_depth >= 0 ? submenu : "";
      }
    }
    for (char c : l) {
      if (c == '{') ++depth;
      if (c == '}') --depth;
    }
    if (entry_depth >= 0 && depth <= entry_depth) entry_depth = -1;
    if (submenu_depth >= 0 && depth <= submenu_depth) {
      submenu_depth = -1;
      submenu.clear();
    }
  }
  return m;
}

// One build: the appliance, the report and the steps.
class Build {
 public:
  Build(const ImageCustomizerOptions& o, std::string overlay)
      : o_(o),
        plan_(o.plan),
        overlay_(std::move(overlay)),
        has_template_(o.plan.has_template_kernel()) {}

 private:
  void Step(std::string_view what) {
    if (o_.on_step) o_.on_step(what);
  }

  template <typename F>
  auto Call(std::string what, F&& f,
            std::chrono::seconds timeout = std::chrono::seconds(0)) {
    return a_->Call(std::move(what), std::forward<F>(f), timeout);
  }

  // Runs one step, recording its result (the detail its function leaves in
  // detail_) and time.
  template <typename F>
  Status Timed(std::string_view name, F&& f) {
    Step(name);
    detail_.clear();
    auto start = Clock::now();
    Status s = f();
    if (!s.ok()) return s;
    if (detail_.empty()) return absl::OkStatus();  // the step did not apply
    v1::CustomizationStepResult* r = report_->add_steps();
    r->set_step(std::string(name));
    r->set_detail(detail_);
    r->set_seconds(SecondsSince(start));
    return absl::OkStatus();
  }

  void Detail(std::string_view line) {
    if (!detail_.empty()) detail_ += "; ";
    detail_ += line;
  }

  StatusOr<std::string> InspectRoot() {
    Step("inspecting the guest");
    char** roots =
        Call("inspecting the guest", [&] { return guestfs_inspect_os(g_); });
    if (roots == nullptr) {
      return a_->Error(absl::StatusCode::kInternal, "inspecting the guest");
    }
    std::vector<std::string> r;
    for (std::string& root : TakeGuestfsStrings(roots)) {
      // The boot template's operating system is not the one customized.
      if (OnTemplateDrive(root)) {
        template_roots_.push_back(std::move(root));
      } else {
        r.push_back(std::move(root));
      }
    }
    if (r.empty()) {
      return absl::FailedPreconditionError(
          "no operating system found in the image (libguestfs inspection)");
    }
    if (r.size() > 1) {
      return absl::UnimplementedError(StrCat(
          "the image holds ", r.size(),
          " operating systems; multi-boot images are not customized yet"));
    }
    std::string type =
        TakeGuestfsString(guestfs_inspect_get_type(g_, r[0].c_str()));
    if (type != "linux") {
      return absl::UnimplementedError(
          StrCat("the image's operating system is '", PrintableUtf8(type),
                 "'; restore builds customize Linux guests only"));
    }
    return r[0];
  }

  Status MountAll(const std::string& root) {
    Step("mounting the guest's file systems");
    std::vector<std::string> kv =
        TakeGuestfsStrings(Call("reading the guest's mount points", [&] {
          return guestfs_inspect_get_mountpoints(g_, root.c_str());
        }));
    std::vector<std::pair<std::string, std::string>> mps;  // mp, device
    for (size_t i = 0; i + 1 < kv.size(); i += 2)
      mps.emplace_back(kv[i], kv[i + 1]);
    std::sort(mps.begin(), mps.end(), [](const auto& a, const auto& b) {
      return a.first.size() < b.first.size();
    });
    for (auto& [mp, dev] : mps) {
      if (OnTemplateDrive(dev)) {
        // The template and the image share file system UUIDs (both made
        // from one image), and inspection resolved this fstab entry to the
        // template's disk: mount the image's own file system instead.
        CAIRN_ASSIGN_OR_RETURN(dev,
                               SameUuidElsewhere(dev, /*on_template=*/false));
      }
      int r = Call(StrCat("mounting ", dev, " at ", mp),
                   [&] { return guestfs_mount(g_, dev.c_str(), mp.c_str()); });
      if (r == -1) {
        if (mp == "/") {
          return a_->Error(absl::StatusCode::kFailedPrecondition,
                           StrCat("mounting the root file system ", dev));
        }
        // A file system the build does not need (a data volume the
        // appliance cannot mount) is left alone; /boot is needed.
        if (mp == "/boot" || mp == "/boot/efi") {
          return a_->Error(absl::StatusCode::kFailedPrecondition,
                           StrCat("mounting ", mp, " (", dev, ")"));
        }
        mount_notes_.push_back(
            StrCat(mp, " (", dev, ") not mounted: ", a_->LastError()));
        continue;
      }
      mounted_[mp] = dev;
    }
    return absl::OkStatus();
  }

  // ------------------------------------------------------- template kernel
  bool OnTemplateDrive(std::string_view dev) const {
    return has_template_ && dev.substr(0, 8) == "/dev/sdb";
  }

  // The partition with the same file system UUID as `dev`, on the template's
  // drive or on the image's.
  StatusOr<std::string> SameUuidElsewhere(const std::string& dev,
                                          bool on_template) {
    std::string uuid =
        TakeGuestfsString(Call(StrCat("reading the UUID of ", dev), [&] {
          return guestfs_vfs_uuid(g_, dev.c_str());
        }));
    if (!uuid.empty()) {
      for (const std::string& p :
           TakeGuestfsStrings(Call("listing partitions", [&] {
             return guestfs_list_partitions(g_);
           }))) {
        if (OnTemplateDrive(p) != on_template) continue;
        std::string u =
            TakeGuestfsString(Call(StrCat("reading the UUID of ", p), [&] {
              return guestfs_vfs_uuid(g_, p.c_str());
            }));
        if (u == uuid) return p;
      }
    }
    return absl::FailedPreconditionError(StrCat(
        "an fstab entry of the ", on_template ? "image" : "boot template",
        " resolves to ", dev, " on the other disk, and no file system with ",
        "its UUID '", PrintableUtf8(uuid), "' is on its own disk"));
  }

  // Mounts the template's root (and /boot, /usr when separate) read-only
  // under a temporary directory of the guest, copies the kernel's files and
  // module tree into the guest, unmounts, and runs the guest's depmod.
  Status CopyTemplateKernel() {
    const v1::TemplateKernel& t = plan_.template_kernel();
    const std::string& k = t.kernel_version();
    const std::string name =
        t.template_name().empty()
            ? StrCat("image ", t.image_id())
            : StrCat(t.template_name(), " (image ", t.image_id(), ")");
    if (template_roots_.empty()) {
      return absl::FailedPreconditionError(
          StrCat("boot template ", name,
                 ": no Linux root file system found on its image"));
    }
    if (template_roots_.size() > 1) {
      return absl::UnimplementedError(
          StrCat("boot template ", name, " holds ", template_roots_.size(),
                 " operating systems; a template must hold exactly one"));
    }
    const std::string& troot = template_roots_[0];
    std::vector<std::string> kv =
        TakeGuestfsStrings(Call("reading the template's mount points", [&] {
          return guestfs_inspect_get_mountpoints(g_, troot.c_str());
        }));
    std::vector<std::pair<std::string, std::string>> mps = {{"/", troot}};
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      if (kv[i] != "/boot" && kv[i] != "/usr") continue;
      std::string dev = kv[i + 1];
      if (!OnTemplateDrive(dev)) {
        CAIRN_ASSIGN_OR_RETURN(dev,
                               SameUuidElsewhere(dev, /*on_template=*/true));
      }
      mps.emplace_back(kv[i], dev);
    }
    std::string dir =
        TakeGuestfsString(Call("creating a mount point for the template", [&] {
          return guestfs_mkdtemp(g_, "/tmp/cairn-template-XXXXXX");
        }));
    if (dir.empty()) {
      return a_->Error(absl::StatusCode::kInternal,
                       "creating a mount point for the template");
    }
    std::vector<std::string> mounted;
    Status copied = [&]() -> Status {
      for (const auto& [mp, dev] : mps) {
        std::string at = mp == "/" ? dir : StrCat(dir, mp);
        if (Call(StrCat("mounting the template's ", mp, " (", dev, ")"), [&] {
              return guestfs_mount_ro(g_, dev.c_str(), at.c_str());
            }) == -1) {
          return a_->Error(absl::StatusCode::kFailedPrecondition,
                           StrCat("mounting boot template ", name, "'s ", mp,
                                  " (", dev, ") read-only"));
        }
        mounted.push_back(at);
      }
      const std::string tmods = StrCat(dir, "/lib/modules/", k);
      if (Call("looking for the template's module tree", [&] {
            return guestfs_is_dir_opts(g_, tmods.c_str(), -1);
          }) <= 0) {
        return absl::FailedPreconditionError(
            StrCat("boot template ", name, " has no /lib/modules/", k));
      }
      if (!Exists(StrCat(dir, "/boot/vmlinuz-", k))) {
        return absl::FailedPreconditionError(
            StrCat("boot template ", name, " has no /boot/vmlinuz-", k));
      }
      std::vector<std::string> files;
      for (const char* f : {"vmlinuz-", "config-", "System.map-"}) {
        const std::string from = StrCat(dir, "/boot/", f, k);
        const std::string to = StrCat("/boot/", f, k);
        if (!Exists(from)) continue;
        if (Call(
                StrCat("copying ", to, " from the template"),
                [&] { return guestfs_cp_a(g_, from.c_str(), to.c_str()); },
                o_.tool_timeout) == -1) {
          return a_->Error(absl::StatusCode::kInternal,
                           StrCat("copying ", to, " from the template"));
        }
        report_->add_changed_files(to);
        files.push_back(to);
      }
      const std::string mods = StrCat("/lib/modules/", k);
      bool replaced = false;
      if (Exists(mods)) {
        replaced = true;
        if (Call(
                StrCat("removing the image's ", mods),
                [&] { return guestfs_rm_rf(g_, mods.c_str()); },
                o_.tool_timeout) == -1) {
          return a_->Error(absl::StatusCode::kInternal,
                           StrCat("removing the image's ", mods));
        }
      }
      if (Call("creating /lib/modules",
               [&] { return guestfs_mkdir_p(g_, "/lib/modules"); }) == -1) {
        return a_->Error(absl::StatusCode::kInternal, "creating /lib/modules");
      }
      if (Call(
              StrCat("copying ", mods, " from the template"),
              [&] { return guestfs_cp_a(g_, tmods.c_str(), mods.c_str()); },
              o_.tool_timeout) == -1) {
        return a_->Error(absl::StatusCode::kInternal,
                         StrCat("copying ", mods, " from the template"));
      }
      report_->add_changed_files(mods);
      std::string list;
      for (const auto& f : files) list += StrCat(", ", f);
      Detail(StrCat("kernel ", k, " copied from boot template ", name, ": ",
                    mods, list));
      if (replaced) {
        Detail(StrCat("the image's own ", mods,
                      " (the same kernel version) was replaced by the "
                      "template's"));
      }
      return absl::OkStatus();
    }();
    // Unmount (innermost first) and remove the mount point whatever
    // happened; a failure here matters only when the copy worked.
    Status cleanup;
    for (auto it = mounted.rbegin(); it != mounted.rend(); ++it) {
      if (Call(StrCat("unmounting ", *it),
               [&] { return guestfs_umount(g_, it->c_str()); }) == -1 &&
          cleanup.ok()) {
        cleanup = a_->Error(absl::StatusCode::kInternal,
                            StrCat("unmounting the template at ", *it));
      }
    }
    if (cleanup.ok() && Call("removing the template's mount point", [&] {
                          return guestfs_rmdir(g_, dir.c_str());
                        }) == -1) {
      cleanup = a_->Error(absl::StatusCode::kInternal,
                          "removing the template's mount point");
    }
    CAIRN_RETURN_IF_ERROR(copied);
    CAIRN_RETURN_IF_ERROR(cleanup);
    CAIRN_RETURN_IF_ERROR(
        GuestCommand({"depmod", "-a", k}, StrCat("depmod -a ", k)).status());
    if (!Exists(StrCat("/lib/modules/", k, "/modules.dep"))) {
      return absl::InternalError(
          StrCat("depmod -a ", k, " wrote no modules.dep"));
    }
    Detail(StrCat("depmod -a ", k));
    return absl::OkStatus();
  }

  // After update-grub: GRUB's default entry must boot the template kernel.
  // When its first entry boots another kernel (a newer one of the image),
  // GRUB_DEFAULT becomes the template kernel's menu entry id (in its
  // submenu) and the configuration is regenerated once more.
  Status GrubDefaultToTemplateKernel(const std::vector<std::string>& argv,
                                     const std::string& cfg) {
    const std::string& k = plan_.kernel_version();
    CAIRN_ASSIGN_OR_RETURN(std::optional<std::string> text, ReadGuestFile(cfg));
    if (!text.has_value()) {
      return absl::InternalError(StrCat(cfg, " is missing after ", argv[0]));
    }
    GrubMenu menu = ParseGrubMenu(*text, k);
    if (menu.first_kernel == k && menu.default_value == "0") {
      Detail(StrCat("GRUB's default (first) entry boots ", k));
      return absl::OkStatus();
    }
    if (menu.entry_id.empty()) {
      return absl::InternalError(
          StrCat(cfg, " has no menu entry for kernel ", k));
    }
    const std::string value = menu.submenu_id.empty()
                                  ? menu.entry_id
                                  : StrCat(menu.submenu_id, ">", menu.entry_id);
    CAIRN_ASSIGN_OR_RETURN(std::optional<std::string> defaults,
                           ReadGuestFile("/etc/default/grub"));
    std::string out;
    bool set = false;
    const std::string line =
        StrCat("# Cairn restore build: boot the template kernel ", k,
               "\nGRUB_DEFAULT=\"", value, "\"\n");
    for (std::string_view l : SplitLines(defaults.value_or(""))) {
      if (TrimSpace(l).substr(0, 13) == "GRUB_DEFAULT=") {
        if (!set) out += line;
        set = true;
        continue;
      }
      out += StrCat(l, "\n");
    }
    if (!set) out += line;
    CAIRN_RETURN_IF_ERROR(WriteGuestFile("/etc/default/grub", out));
    CAIRN_RETURN_IF_ERROR(
        GuestCommand(argv, "regenerating the boot loader configuration")
            .status());
    CAIRN_ASSIGN_OR_RETURN(text, ReadGuestFile(cfg));
    menu = ParseGrubMenu(text.value_or(""), k);
    if (menu.default_value != value) {
      return absl::InternalError(
          StrCat(cfg, " does not default to ", value, " after setting it in ",
                 "/etc/default/grub (it says '",
                 PrintableUtf8(menu.default_value), "')"));
    }
    Detail(StrCat("GRUB_DEFAULT=\"", value, "\" in /etc/default/grub: ", cfg,
                  " boots ", k, " by default (its first entry boots ",
                  menu.first_kernel, ")"));
    return absl::OkStatus();
  }

  // ---------------------------------------------------------------- shrink
  // With the image still at its source size, before anything is mounted:
  // the partitions must fit the smaller target disk with only the last one
  // (by end) shrinking, and that one must hold ext2/3/4 whose minimum size
  // (resize2fs -P after e2fsck -f) plus headroom fits (disk_shrink.h). Then
  // its file system shrinks (resize2fs) and the partition ends earlier.
  // FinishShrink() cuts the overlay to the target size once the appliance
  // is down. Refusals are FailedPrecondition, before anything is written.
  Status Shrink() {
    const uint64_t target = plan_.target_disk_bytes();
    int64_t size = Call("reading the disk size", [&] {
      return guestfs_blockdev_getsize64(g_, "/dev/sda");
    });
    if (size < 0) return a_->Error(absl::StatusCode::kInternal, "disk size");
    if (target == 0 || target >= static_cast<uint64_t>(size)) {
      return absl::OkStatus();
    }
    shrink_from_ = static_cast<uint64_t>(size);
    std::string table =
        TakeGuestfsString(Call("reading the partition table", [&] {
          return guestfs_part_get_parttype(g_, "/dev/sda");
        }));
    if (table.empty()) {
      return absl::FailedPreconditionError(StrCat(
          "the target disk (", target, " bytes) is smaller than the image (",
          size, " bytes), and the image has no partition table to shrink"));
    }
    shrink_gpt_ = table == "gpt";
    std::unique_ptr<guestfs_partition_list, PartitionListFree> parts(
        Call("listing partitions",
             [&] { return guestfs_part_list(g_, "/dev/sda"); }));
    if (parts == nullptr) {
      return a_->Error(absl::StatusCode::kInternal, "listing partitions");
    }
    const guestfs_partition* last = nullptr;
    for (uint32_t i = 0; i < parts->len; ++i) {
      if (table == "msdos" && parts->val[i].part_num > 4) {
        return absl::UnimplementedError(
            "shrinking a disk with logical partitions (inside an MBR "
            "extended partition) is not supported yet");
      }
      if (last == nullptr || parts->val[i].part_end > last->part_end) {
        last = &parts->val[i];
      }
    }
    if (last == nullptr) {
      Detail(StrCat("the disk has no partitions; cut from ", size, " to ",
                    target, " bytes"));
      return absl::OkStatus();
    }
    int sector = Call("reading the sector size",
                      [&] { return guestfs_blockdev_getss(g_, "/dev/sda"); });
    if (sector <= 0)
      return a_->Error(absl::StatusCode::kInternal, "sector size");
    ShrinkRequest r;
    r.target_disk_bytes = target;
    r.sector_size = static_cast<uint32_t>(sector);
    r.gpt = shrink_gpt_;
    r.last_partition = last->part_num;
    r.last_start_bytes = last->part_start;
    r.last_end_bytes = last->part_end + 1;  // part_end is the last byte
    for (uint32_t i = 0; i < parts->len; ++i) {
      if (&parts->val[i] == last) continue;
      r.others_end_bytes =
          std::max<uint64_t>(r.others_end_bytes, parts->val[i].part_end + 1);
    }
    CAIRN_ASSIGN_OR_RETURN(ShrinkGeometry geo, PlanShrink(r));
    const int num = last->part_num;
    if (!geo.shrink_partition) {
      Detail(StrCat("the partitions end at byte ", r.last_end_bytes,
                    " and fit the ", target, "-byte disk unchanged"));
      return absl::OkStatus();
    }
    const std::string dev = StrCat("/dev/sda", num);
    std::string fs = TakeGuestfsString(Call("reading a file system type", [&] {
      return guestfs_vfs_type(g_, dev.c_str());
    }));
    CAIRN_RETURN_IF_ERROR(CheckShrinkableFileSystem(num, fs));
    if (Call(
            StrCat("checking ", dev),
            [&] { return guestfs_e2fsck_f(g_, dev.c_str()); },
            o_.tool_timeout) == -1) {
      return a_->Error(absl::StatusCode::kDataLoss,
                       StrCat("e2fsck -f of ", dev, " before shrinking it"));
    }
    std::vector<std::string> kv =
        TakeGuestfsStrings(Call(StrCat("reading the superblock of ", dev), [&] {
          return guestfs_tune2fs_l(g_, dev.c_str());
        }));
    uint64_t block_size = 0;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      if (kv[i] == "Block size") {
        std::from_chars(kv[i + 1].data(), kv[i + 1].data() + kv[i + 1].size(),
                        block_size);
      }
    }
    if (block_size == 0) {
      return a_->Error(absl::StatusCode::kInternal,
                       StrCat("reading the block size of ", dev));
    }
    // libguestfs has no call for `resize2fs -P`; its debug shell runs it in
    // the appliance (the device name is built here, not taken from input).
    // The partition's node can be missing for a moment after e2fsck.
    std::string cmd = StrCat(SettleUdevFor(dev), "resize2fs -P ", dev, " 2>&1");
    std::vector<std::string> args = {cmd};
    std::vector<char*> argv = GuestfsStringArray(args);
    std::string out = TakeGuestfsString(Call(
        StrCat("estimating the minimum size of ", dev),
        [&] { return guestfs_debug(g_, "sh", argv.data()); }, o_.tool_timeout));
    if (out.empty()) {
      return a_->Error(absl::StatusCode::kInternal,
                       StrCat("resize2fs -P ", dev));
    }
    CAIRN_ASSIGN_OR_RETURN(uint64_t min_blocks, ParseResize2fsMinimum(out));
    const uint64_t minimum = min_blocks * block_size;
    CAIRN_ASSIGN_OR_RETURN(uint64_t fs_bytes,
                           ShrunkFileSystemBytes(num, geo.new_partition_bytes,
                                                 minimum, block_size, target));
    if (Call(
            StrCat("shrinking the file system on ", dev),
            [&] {
              return guestfs_resize2fs_size(g_, dev.c_str(),
                                            static_cast<int64_t>(fs_bytes));
            },
            o_.tool_timeout) == -1) {
      return a_->Error(absl::StatusCode::kInternal,
                       StrCat("resize2fs ", dev, " to ", fs_bytes, " bytes"));
    }
    CAIRN_RETURN_IF_ERROR(ShrinkPartition(r, geo));
    Detail(StrCat(fs, " on ", dev, " shrunk to ", fs_bytes, " bytes (minimum ",
                  minimum, " + headroom ", ShrinkHeadroomBytes(minimum), ")"));
    Detail(StrCat("partition ", num, " shrunk from ",
                  r.last_end_bytes - r.last_start_bytes, " to ",
                  geo.new_partition_bytes, " bytes (ends at byte ",
                  geo.new_end_bytes, ")"));
    return absl::OkStatus();
  }

  // Ends the last partition at geo.new_end_sector, keeping its start, type,
  // flags and ids. libguestfs's part_resize (parted resizepart) refuses to
  // shrink in script mode, so sfdisk -N in the appliance's debug shell does
  // it (numbers only, built here; no signature is wiped); the table is
  // read back to check.
  Status ShrinkPartition(const ShrinkRequest& r, const ShrinkGeometry& geo) {
    const int num = r.last_partition;
    CAIRN_ASSIGN_OR_RETURN(std::string before, PartitionIdentity(num, r.gpt));
    const int64_t start =
        static_cast<int64_t>(r.last_start_bytes / r.sector_size);
    const int64_t sectors = geo.new_end_sector - start + 1;
    std::string cmd = StrCat(
        SettleUdevFor(StrCat("/dev/sda", num)), "echo ", start, ",", sectors,
        " | sfdisk --no-reread --wipe never --wipe-partitions never -N ", num,
        " /dev/sda 2>&1");
    std::vector<std::string> args = {cmd};
    std::vector<char*> argv = GuestfsStringArray(args);
    char* out = Call(StrCat("shrinking partition ", num),
                     [&] { return guestfs_debug(g_, "sh", argv.data()); });
    if (out == nullptr) {
      return a_->Error(absl::StatusCode::kInternal,
                       StrCat("shrinking partition ", num, " (sfdisk)"));
    }
    TakeGuestfsString(out);
    if (Call("re-reading the partition table",
             [&] { return guestfs_blockdev_rereadpt(g_, "/dev/sda"); }) == -1) {
      return a_->Error(absl::StatusCode::kInternal,
                       "re-reading the partition table");
    }
    std::unique_ptr<guestfs_partition_list, PartitionListFree> parts(
        Call("listing partitions",
             [&] { return guestfs_part_list(g_, "/dev/sda"); }));
    if (parts == nullptr) {
      return a_->Error(absl::StatusCode::kInternal, "listing partitions");
    }
    for (uint32_t i = 0; i < parts->len; ++i) {
      const guestfs_partition& p = parts->val[i];
      if (p.part_num != num) continue;
      if (p.part_start != r.last_start_bytes ||
          p.part_end + 1 != geo.new_end_bytes) {
        return absl::InternalError(
            StrCat("partition ", num, " is bytes ", p.part_start, " to ",
                   p.part_end + 1, " after shrinking, not ", r.last_start_bytes,
                   " to ", geo.new_end_bytes));
      }
      CAIRN_ASSIGN_OR_RETURN(std::string after, PartitionIdentity(num, r.gpt));
      if (after != before) {
        return absl::InternalError(StrCat(
            "partition ", num, " changed its type or ids when shrunk: ", before,
            " -> ", after));
      }
      return absl::OkStatus();
    }
    return absl::InternalError(
        StrCat("partition ", num, " is gone after shrinking it"));
  }

  // What must survive a partition's resize: GPT type and partition GUIDs,
  // or the MBR type and boot flag.
  StatusOr<std::string> PartitionIdentity(int num, bool gpt) {
    if (gpt) {
      std::string type = TakeGuestfsString(Call("reading a GPT type", [&] {
        return guestfs_part_get_gpt_type(g_, "/dev/sda", num);
      }));
      std::string guid = TakeGuestfsString(Call("reading a GPT GUID", [&] {
        return guestfs_part_get_gpt_guid(g_, "/dev/sda", num);
      }));
      if (type.empty() || guid.empty()) {
        return a_->Error(absl::StatusCode::kInternal,
                         StrCat("reading partition ", num, "'s GUIDs"));
      }
      return StrCat("type ", type, ", GUID ", guid);
    }
    int id = Call("reading an MBR type",
                  [&] { return guestfs_part_get_mbr_id(g_, "/dev/sda", num); });
    int boot = Call("reading a boot flag", [&] {
      return guestfs_part_get_bootable(g_, "/dev/sda", num);
    });
    if (id == -1 || boot == -1) {
      return a_->Error(absl::StatusCode::kInternal,
                       StrCat("reading partition ", num, "'s MBR type"));
    }
    return StrCat("MBR type ", id, boot == 1 ? ", bootable" : "");
  }

  // After the appliance is down: the overlay is cut to the target size,
  // and a GPT's backup header moves to the new end (a short second
  // appliance session: part_expand_gpt, i.e. sgdisk -e).
  Status FinishShrink() {
    const uint64_t target = plan_.target_disk_bytes();
    CAIRN_ASSIGN_OR_RETURN(
        CommandResult cut,
        RunCommand({o_.qemu_img, "resize", "-q", "--shrink", "-f", "qcow2",
                    overlay_, std::to_string(target)},
                   absl::Seconds(120)));
    if (cut.exit_code != 0) {
      return absl::InternalError(
          StrCat("qemu-img resize --shrink of the overlay failed: ",
                 PrintableUtf8(TrimSpace(cut.output))));
    }
    Detail(StrCat("disk cut from ", shrink_from_, " to ", target, " bytes"));
    if (!shrink_gpt_) return absl::OkStatus();
    Step("moving the GPT backup header to the new end");
    GuestfsApplianceOptions ao;
    ao.drives.push_back(
        GuestfsDrive{.path = overlay_, .format = "qcow2", .readonly = false});
    ao.identifier = "cairn-restore-build-gpt";
    ao.launch_timeout = o_.launch_timeout;
    ao.call_timeout = o_.call_timeout;
    ao.autosync = true;
    CAIRN_ASSIGN_OR_RETURN(a_, GuestfsAppliance::Launch(ao));
    g_ = a_->g();
    if (Call("moving the GPT backup header to the disk's end",
             [&] { return guestfs_part_expand_gpt(g_, "/dev/sda"); }) == -1) {
      return a_->Error(absl::StatusCode::kInternal,
                       "moving the GPT backup header");
    }
    std::unique_ptr<guestfs_partition_list, PartitionListFree> parts(
        Call("listing partitions",
             [&] { return guestfs_part_list(g_, "/dev/sda"); }));
    if (parts == nullptr) {
      return a_->Error(absl::StatusCode::kInternal,
                       "reading the GPT after moving its backup header");
    }
    for (uint32_t i = 0; i < parts->len; ++i) {
      if (parts->val[i].part_end + 1 > target) {
        return absl::InternalError(
            StrCat("partition ", parts->val[i].part_num, " ends at byte ",
                   parts->val[i].part_end + 1, ", beyond the ", target,
                   "-byte disk, after the shrink"));
      }
    }
    CAIRN_RETURN_IF_ERROR(a_->Shutdown());
    Detail("GPT backup header moved to the new end (sgdisk -e)");
    return absl::OkStatus();
  }

  // ------------------------------------------------------------------ grow
  // The disk, its partitions and the last one (by end), before mounting.
  Status Grow() {
    const uint64_t target = plan_.target_disk_bytes();
    int64_t size = Call("reading the disk size", [&] {
      return guestfs_blockdev_getsize64(g_, "/dev/sda");
    });
    if (size < 0) return a_->Error(absl::StatusCode::kInternal, "disk size");
    if (target == 0 ||
        static_cast<uint64_t>(size) <= plan_.source_disk_bytes()) {
      return absl::OkStatus();
    }
    std::string table =
        TakeGuestfsString(Call("reading the partition table", [&] {
          return guestfs_part_get_parttype(g_, "/dev/sda");
        }));
    if (table.empty()) {
      Detail("the disk has no partition table; nothing to grow");
      return absl::OkStatus();
    }
    std::unique_ptr<guestfs_partition_list, PartitionListFree> parts(
        Call("listing partitions",
             [&] { return guestfs_part_list(g_, "/dev/sda"); }));
    if (parts == nullptr) {
      return a_->Error(absl::StatusCode::kInternal, "listing partitions");
    }
    const guestfs_partition* last = nullptr;
    for (uint32_t i = 0; i < parts->len; ++i) {
      if (last == nullptr || parts->val[i].part_end > last->part_end) {
        last = &parts->val[i];
      }
    }
    if (last == nullptr) {
      Detail("the disk has no partitions; nothing to grow");
      return absl::OkStatus();
    }
    const int num = last->part_num;
    if (table == "msdos" && num > 4) {
      return absl::UnimplementedError(
          StrCat("growing a logical partition (", num,
                 ") inside an MBR extended partition is not supported yet"));
    }
    std::string dev = StrCat("/dev/sda", num);
    std::string fs = TakeGuestfsString(Call("reading a file system type", [&] {
      return guestfs_vfs_type(g_, dev.c_str());
    }));
    int sector = Call("reading the sector size",
                      [&] { return guestfs_blockdev_getss(g_, "/dev/sda"); });
    if (sector <= 0)
      return a_->Error(absl::StatusCode::kInternal, "sector size");
    const int64_t sectors = size / sector;
    int64_t end;
    if (table == "gpt") {
      if (Call("moving the GPT backup header to the disk's end",
               [&] { return guestfs_part_expand_gpt(g_, "/dev/sda"); }) == -1) {
        return a_->Error(absl::StatusCode::kInternal,
                         "moving the GPT backup header");
      }
      end = sectors - 34;  // the backup header and its 32 sectors of entries
    } else {
      end = sectors - 1;
    }
    if (plan_.esp_bytes() > 0) {
      // The new ESP takes the end of the disk, 1 MiB aligned; the last
      // partition grows up to it.
      const int64_t esp_sectors =
          static_cast<int64_t>(plan_.esp_bytes()) / sector;
      const int64_t align = (1 << 20) / sector;
      esp_start_ = (end + 1 - esp_sectors) / align * align;
      esp_end_ = end;
      esp_table_ = table;
      end = esp_start_ - 1;
    }
    const int64_t old_end = static_cast<int64_t>(last->part_end) / sector;
    if (end <= old_end) {
      Detail("the last partition already ends at the disk's end");
      return absl::OkStatus();
    }
    if (fs == "swap") {
      Detail(StrCat("partition ", num, " is swap: not grown"));
      return absl::OkStatus();
    }
    if (Call(StrCat("growing partition ", num), [&] {
          return guestfs_part_resize(g_, "/dev/sda", num, end);
        }) == -1) {
      return a_->Error(absl::StatusCode::kInternal,
                       StrCat("growing partition ", num));
    }
    const uint64_t grown = static_cast<uint64_t>(end - old_end) * sector;
    Detail(StrCat("partition ", num, " (", fs, ") grown by ", grown,
                  " bytes to the end of the ", size, "-byte disk"));
    if (fs == "ext2" || fs == "ext3" || fs == "ext4") {
      if (Call(
              StrCat("checking ", dev),
              [&] { return guestfs_e2fsck_f(g_, dev.c_str()); },
              o_.tool_timeout) == -1) {
        return a_->Error(absl::StatusCode::kDataLoss,
                         StrCat("e2fsck -f of ", dev, " before growing it"));
      }
      if (Call(
              StrCat("growing the file system on ", dev),
              [&] { return guestfs_resize2fs(g_, dev.c_str()); },
              o_.tool_timeout) == -1) {
        return a_->Error(absl::StatusCode::kInternal,
                         StrCat("resize2fs ", dev));
      }
      Detail(StrCat(fs, " on ", dev, " grown (resize2fs)"));
    } else if (fs == "xfs" || fs == "btrfs") {
      grow_mounted_ = dev;
      grow_mounted_fs_ = fs;
    } else {
      Detail(StrCat("the file system on ", dev, " (",
                    fs.empty() ? "unknown" : fs, ") is not grown"));
    }
    return absl::OkStatus();
  }

  // Creates the EFI System Partition Grow() made room for: a primary
  // partition (MBR type 0xef, or the GPT ESP type) with a FAT file system.
  Status CreateEsp() {
    if (esp_start_ <= 0) {
      return absl::InternalError(
          "no room was made for the EFI System Partition (the disk did not "
          "grow)");
    }
    const char* kind = esp_table_ == "gpt" ? "p" : "primary";
    if (Call("adding the EFI System Partition", [&] {
          return guestfs_part_add(g_, "/dev/sda", kind, esp_start_, esp_end_);
        }) == -1) {
      return a_->Error(absl::StatusCode::kInternal,
                       "adding the EFI System Partition");
    }
    std::unique_ptr<guestfs_partition_list, PartitionListFree> parts(
        Call("listing partitions",
             [&] { return guestfs_part_list(g_, "/dev/sda"); }));
    if (parts == nullptr) {
      return a_->Error(absl::StatusCode::kInternal, "listing partitions");
    }
    const guestfs_partition* added = nullptr;  // the one that ends last
    for (uint32_t i = 0; i < parts->len; ++i) {
      if (added == nullptr || parts->val[i].part_end > added->part_end) {
        added = &parts->val[i];
      }
    }
    if (added == nullptr) {
      return absl::InternalError("the new EFI System Partition is not listed");
    }
    const int num = added->part_num;
    int r;
    if (esp_table_ == "gpt") {
      r = Call("setting the ESP type", [&] {
        return guestfs_part_set_gpt_type(
            g_, "/dev/sda", num, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
      });
    } else {
      r = Call("setting the ESP type", [&] {
        return guestfs_part_set_mbr_id(g_, "/dev/sda", num, 0xef);
      });
    }
    if (r == -1) {
      return a_->Error(absl::StatusCode::kInternal, "setting the ESP type");
    }
    esp_device_ = StrCat("/dev/sda", num);
    if (Call(StrCat("making a FAT file system on ", esp_device_), [&] {
          return guestfs_mkfs_opts(g_, "vfat", esp_device_.c_str(), -1);
        }) == -1) {
      return a_->Error(absl::StatusCode::kInternal,
                       StrCat("mkfs.vfat ", esp_device_));
    }
    Detail(StrCat("EFI System Partition ", esp_device_, " (",
                  (added->part_size >> 20),
                  " MiB, FAT) created at the end of the disk"));
    return absl::OkStatus();
  }

  // Mounts the ESP at /boot/efi (and in fstab) and installs GRUB for
  // x86_64-efi at the removable path with the guest's own grub-install.
  Status InstallUefiGrub() {
    if (Call("creating /boot/efi",
             [&] { return guestfs_mkdir_p(g_, "/boot/efi"); }) == -1) {
      return a_->Error(absl::StatusCode::kInternal, "creating /boot/efi");
    }
    if (Call("mounting the ESP", [&] {
          return guestfs_mount(g_, esp_device_.c_str(), "/boot/efi");
        }) == -1) {
      return a_->Error(absl::StatusCode::kInternal, "mounting the ESP");
    }
    mounted_["/boot/efi"] = esp_device_;
    std::string uuid = TakeGuestfsString(Call("reading the ESP's UUID", [&] {
      return guestfs_vfs_uuid(g_, esp_device_.c_str());
    }));
    if (uuid.empty()) {
      return a_->Error(absl::StatusCode::kInternal, "reading the ESP's UUID");
    }
    CAIRN_RETURN_IF_ERROR(EditFile("/etc/fstab", [&](const std::string& t) {
      return AddFstabEntry(
          t, StrCat("UUID=", uuid, "\t/boot/efi\tvfat\tumask=0077\t0\t1"),
          "/boot/efi", "EFI System Partition added by Cairn's restore build");
    }));
    // GRUB's x86_64-efi modules: the guest's own, else the media agent
    // host's when it runs the very same GRUB version (grub-install builds
    // the core image with the guest's grub-mkimage from these modules).
    constexpr char kEfiModules[] = "/usr/lib/grub/x86_64-efi";
    if (Call("looking for GRUB's EFI modules",
             [&] { return guestfs_is_dir_opts(g_, kEfiModules, -1); }) <= 0) {
      std::error_code ec;
      if (!std::filesystem::is_directory(kEfiModules, ec)) {
        return absl::FailedPreconditionError(
            "the image has no GRUB for UEFI (grub-efi-amd64-bin) and neither "
            "has this media agent's host: install grub-efi-amd64-bin here");
      }
      CAIRN_ASSIGN_OR_RETURN(std::string guest_version,
                             GuestCommand({"grub-install", "--version"},
                                          "grub-install --version"));
      CAIRN_ASSIGN_OR_RETURN(
          CommandResult host,
          RunCommand({"grub-install", "--version"}, absl::Seconds(30)));
      if (host.exit_code != 0 ||
          TrimSpace(host.output) != TrimSpace(guest_version)) {
        return absl::FailedPreconditionError(StrCat(
            "the image has no GRUB for UEFI (grub-efi-amd64-bin), and this "
            "host's GRUB (",
            PrintableUtf8(TrimSpace(host.output)), ") is not the image's (",
            PrintableUtf8(TrimSpace(guest_version)),
            "): install grub-efi-amd64-bin in the image first"));
      }
      if (Call("copying GRUB's EFI modules into the image", [&] {
            return guestfs_copy_in(g_, kEfiModules, "/usr/lib/grub");
          }) == -1) {
        return a_->Error(absl::StatusCode::kInternal,
                         "copying GRUB's EFI modules into the image");
      }
      report_->add_changed_files(kEfiModules);
      Detail(
          StrCat("GRUB x86_64-efi modules copied from the media agent host (",
                 TrimSpace(guest_version), ", the image's own version)"));
    }
    CAIRN_RETURN_IF_ERROR(
        GuestCommand(
            {"grub-install", "--target=x86_64-efi", "--efi-directory=/boot/efi",
             "--bootloader-id=debian", "--removable", "--no-nvram"},
            "installing GRUB for UEFI")
            .status());
    if (Call("checking the removable boot path", [&] {
          return guestfs_is_file_opts(g_, "/boot/efi/EFI/BOOT/BOOTX64.EFI", -1);
        }) <= 0) {
      return absl::InternalError(
          "grub-install did not write \\EFI\\BOOT\\BOOTX64.EFI");
    }
    report_->add_changed_files("/boot/efi/EFI/BOOT/BOOTX64.EFI");
    Detail(
        "grub-install --target=x86_64-efi --removable: "
        "\\EFI\\BOOT\\BOOTX64.EFI");
    return absl::OkStatus();
  }

  Status GrowMounted() {
    if (grow_mounted_.empty()) return absl::OkStatus();
    std::string mp;
    for (const auto& [m, d] : mounted_) {
      if (d == grow_mounted_) mp = m;
    }
    if (mp.empty()) {
      Detail(StrCat(grow_mounted_, " (", grow_mounted_fs_,
                    ") is not mounted by the guest: not grown"));
      return absl::OkStatus();
    }
    int r;
    if (grow_mounted_fs_ == "xfs") {
      r = Call(
          "xfs_growfs", [&] { return guestfs_xfs_growfs(g_, mp.c_str(), -1); },
          o_.tool_timeout);
    } else {
      r = Call(
          "btrfs resize",
          [&] { return guestfs_btrfs_filesystem_resize(g_, mp.c_str(), -1); },
          o_.tool_timeout);
    }
    if (r == -1) {
      return a_->Error(absl::StatusCode::kInternal,
                       StrCat("growing ", grow_mounted_fs_, " at ", mp));
    }
    Detail(StrCat(grow_mounted_fs_, " at ", mp, " grown"));
    return absl::OkStatus();
  }

  // ------------------------------------------------------------- files
  StatusOr<std::optional<std::string>> ReadGuestFile(const std::string& path) {
    int is_file = Call(StrCat("looking at ", path), [&] {
      return guestfs_is_file_opts(g_, path.c_str(), -1);
    });
    if (is_file <= 0) return std::optional<std::string>();
    size_t size = 0;
    char* data = Call(StrCat("reading ", path), [&] {
      return guestfs_read_file(g_, path.c_str(), &size);
    });
    if (data == nullptr) {
      return a_->Error(absl::StatusCode::kInternal, StrCat("reading ", path));
    }
    std::string out(data, size);
    free(data);
    return std::optional<std::string>(std::move(out));
  }

  Status WriteGuestFile(const std::string& path, std::string_view content) {
    if (Call(StrCat("writing ", path), [&] {
          return guestfs_write(g_, path.c_str(), content.data(),
                               content.size());
        }) == -1) {
      return a_->Error(absl::StatusCode::kInternal, StrCat("writing ", path));
    }
    report_->add_changed_files(path);
    return absl::OkStatus();
  }

  // Applies `edit` to `path` if it exists; writes only a changed file.
  template <typename F>
  Status EditFile(const std::string& path, F&& edit) {
    CAIRN_ASSIGN_OR_RETURN(std::optional<std::string> text,
                           ReadGuestFile(path));
    if (!text.has_value()) return absl::OkStatus();
    ConfigEdit e = edit(*text);
    if (!e.changed()) return absl::OkStatus();
    if (e.text != *text) CAIRN_RETURN_IF_ERROR(WriteGuestFile(path, e.text));
    std::string lines;
    for (const std::string& c : e.changes)
      lines += StrCat(lines.empty() ? "" : ", ", c);
    Detail(StrCat(path, ": ", lines));
    return absl::OkStatus();
  }

  std::vector<std::string> ListDir(const std::string& dir) {
    if (Call("looking at a directory",
             [&] { return guestfs_is_dir_opts(g_, dir.c_str(), -1); }) <= 0) {
      return {};
    }
    std::vector<std::string> names = TakeGuestfsStrings(Call(
        StrCat("listing ", dir), [&] { return guestfs_ls(g_, dir.c_str()); }));
    std::sort(names.begin(), names.end());
    return names;
  }

  // ----------------------------------------------------- device references
  std::optional<std::string> StableRef(std::string_view spec) {
    std::string device(spec);
    if (spec.substr(0, 10) == "/dev/disk/") {
      // by-path and by-id links of the source do not exist in the
      // appliance; the source profile does not say which partition they
      // named either. Only kernel names are mapped.
      return std::nullopt;
    }
    std::optional<uint32_t> part = PartitionOfDeviceName(spec);
    if (!part.has_value()) return std::nullopt;
    // The boot disk is the only disk a restore build writes, so every name
    // is taken to be a partition of it, by number.
    std::string dev = *part == 0 ? "/dev/sda" : StrCat("/dev/sda", *part);
    std::string uuid =
        TakeGuestfsString(Call(StrCat("reading the UUID of ", dev), [&] {
          return guestfs_vfs_uuid(g_, dev.c_str());
        }));
    if (uuid.empty()) return std::nullopt;
    return StrCat("UUID=", uuid);
  }

  Status StableReferences() {
    StableReferenceFn stable = [this](std::string_view s) {
      return StableRef(s);
    };
    CAIRN_RETURN_IF_ERROR(EditFile("/etc/fstab", [&](const std::string& t) {
      return RewriteFstab(t, stable);
    }));
    CAIRN_RETURN_IF_ERROR(EditFile("/etc/crypttab", [&](const std::string& t) {
      return RewriteCrypttab(t, stable);
    }));
    CAIRN_RETURN_IF_ERROR(
        EditFile("/etc/default/grub", [&](const std::string& t) {
          ConfigEdit e = RewriteGrubDefaults(t, stable);
          if (e.changed()) grub_defaults_changed_ = true;
          return e;
        }));
    return absl::OkStatus();
  }

  // --------------------------------------------------------------- network
  Status Network() {
    std::vector<v1::NicRename> renames(plan_.nic_renames().begin(),
                                       plan_.nic_renames().end());
    std::vector<std::string> files = {"/etc/network/interfaces"};
    auto add_dir = [&](const std::string& dir, std::string_view suffix) {
      for (const std::string& n : ListDir(dir)) {
        if (suffix.empty() || (n.size() > suffix.size() &&
                               n.substr(n.size() - suffix.size()) == suffix)) {
          files.push_back(StrCat(dir, "/", n));
        }
      }
    };
    add_dir("/etc/network/interfaces.d", "");
    add_dir("/etc/netplan", ".yaml");
    add_dir("/etc/NetworkManager/system-connections", "");
    add_dir("/etc/systemd/network", ".network");
    add_dir("/etc/systemd/network", ".link");
    add_dir("/etc/systemd/network", ".netdev");
    files.push_back("/etc/udev/rules.d/70-persistent-net.rules");
    for (const std::string& f : files) {
      CAIRN_RETURN_IF_ERROR(EditFile(
          f, [&](const std::string& t) { return RenameNics(t, renames); }));
    }
    if (detail_.empty()) {
      Detail("no configuration names the source NICs");
    }
    return absl::OkStatus();
  }

  // ------------------------------------------------------------- initramfs
  Status CheckKernel() {
    const std::string& k = plan_.kernel_version();
    if (k.empty()) return absl::OkStatus();
    std::string dir = StrCat("/lib/modules/", k);
    if (Call("looking for the kernel's modules",
             [&] { return guestfs_is_dir_opts(g_, dir.c_str(), -1); }) <= 0) {
      return absl::FailedPreconditionError(
          StrCat("the image has no kernel ", k, " (", dir, " is missing)"));
    }
    return absl::OkStatus();
  }

  bool Exists(const std::string& path) {
    return Call(StrCat("looking for ", path),
                [&] { return guestfs_exists(g_, path.c_str()); }) > 0;
  }

  // Runs argv in the guest (chroot, with /dev, /proc and /sys), returning
  // its output; Internal with the tool's output when it fails.
  StatusOr<std::string> GuestCommand(const std::vector<std::string>& argv,
                                     std::string_view what) {
    std::vector<char*> cargv = GuestfsStringArray(argv);
    char* out = Call(
        std::string(what), [&] { return guestfs_command(g_, cargv.data()); },
        o_.tool_timeout);
    if (out == nullptr) {
      return a_->Error(absl::StatusCode::kInternal,
                       StrCat(what, " (", argv[0], " in the guest)"));
    }
    return TakeGuestfsString(out);
  }

  Status Initramfs() {
    const std::string& k = plan_.kernel_version();
    if (k.empty()) {
      return absl::InvalidArgumentError(
          "the plan adds initramfs modules but names no kernel version");
    }
    const std::string why =
        StrCat("Added by Cairn's restore build for ", plan_.target(),
               ": drivers the target needs at boot");
    std::vector<std::string> modules(plan_.initramfs_modules().begin(),
                                     plan_.initramfs_modules().end());
    std::string list;
    for (const auto& m : modules) list += StrCat(list.empty() ? "" : " ", m);
    if (Exists("/usr/sbin/update-initramfs") ||
        Exists("/sbin/update-initramfs")) {
      CAIRN_ASSIGN_OR_RETURN(
          std::optional<std::string> conf,
          ReadGuestFile("/etc/initramfs-tools/initramfs.conf"));
      std::string policy = InitramfsToolsModulesPolicy(conf.value_or(""));
      if (policy == "dep") {
        // MODULES=dep picks modules from the machine mkinitramfs runs on:
        // here, the appliance. "most" is what the guest would get without
        // a hint; the target then finds its drivers whatever it is.
        CAIRN_RETURN_IF_ERROR(WriteGuestFile(
            "/etc/initramfs-tools/conf.d/90-cairn-restore",
            StrCat("# ", why,
                   "\n# MODULES=dep would pick the build appliance's "
                   "drivers.\nMODULES=most\n")));
        Detail("MODULES=dep overridden with most (conf.d/90-cairn-restore)");
      }
      if (!modules.empty()) {
        CAIRN_RETURN_IF_ERROR(
            EditFile("/etc/initramfs-tools/modules", [&](const std::string& t) {
              return AddInitramfsToolsModules(t, modules, why);
            }));
        CAIRN_ASSIGN_OR_RETURN(std::optional<std::string> have,
                               ReadGuestFile("/etc/initramfs-tools/modules"));
        if (!have.has_value()) {
          ConfigEdit e = AddInitramfsToolsModules("", modules, why);
          CAIRN_RETURN_IF_ERROR(
              WriteGuestFile("/etc/initramfs-tools/modules", e.text));
          Detail(StrCat("/etc/initramfs-tools/modules: created with ", list));
        }
      }
      std::string initrd = StrCat("/boot/initrd.img-", k);
      CAIRN_ASSIGN_OR_RETURN(
          std::string out,
          GuestCommand(
              {"update-initramfs", Exists(initrd) ? "-u" : "-c", "-k", k},
              StrCat("rebuilding the initramfs of ", k)));
      report_->add_changed_files(initrd);
      Detail(StrCat("update-initramfs ", Exists(initrd) ? "-u" : "-c", " -k ",
                    k, modules.empty() ? "" : StrCat(" with ", list)));
      return CheckInitramfs(initrd, modules);
    }
    if (Exists("/usr/bin/dracut") || Exists("/usr/sbin/dracut") ||
        Exists("/sbin/dracut")) {
      if (!modules.empty()) {
        CAIRN_RETURN_IF_ERROR(
            WriteGuestFile("/etc/dracut.conf.d/90-cairn-restore.conf",
                           DracutDropIn(modules, why)));
      }
      CAIRN_RETURN_IF_ERROR(
          GuestCommand({"dracut", "-f", "--kver", k},
                       StrCat("rebuilding the initramfs of ", k))
              .status());
      Detail(StrCat("dracut -f --kver ", k,
                    modules.empty() ? "" : StrCat(" with ", list)));
      return absl::OkStatus();
    }
    if (Exists("/sbin/mkinitrd") || Exists("/usr/sbin/mkinitrd")) {
      return absl::UnimplementedError(
          "the guest builds its initramfs with mkinitrd; restore builds "
          "support initramfs-tools and dracut so far");
    }
    return absl::FailedPreconditionError(
        "the guest has no initramfs tool Cairn knows (update-initramfs, "
        "dracut, mkinitrd)");
  }

  // lsinitramfs of the rebuilt image must list every added module.
  Status CheckInitramfs(const std::string& initrd,
                        const std::vector<std::string>& modules) {
    if (modules.empty() || !Exists("/usr/bin/lsinitramfs")) {
      return absl::OkStatus();
    }
    CAIRN_ASSIGN_OR_RETURN(
        std::string listing,
        GuestCommand({"lsinitramfs", initrd}, "listing the new initramfs"));
    std::vector<std::string> missing;
    for (const std::string& m : modules) {
      std::string a = m, b = m;
      std::replace(a.begin(), a.end(), '-', '_');
      std::replace(b.begin(), b.end(), '_', '-');
      bool found = false;
      for (std::string_view line : SplitLines(listing)) {
        size_t slash = line.rfind('/');
        std::string_view base =
            line.substr(slash == std::string_view::npos ? 0 : slash + 1);
        for (const std::string& n : {a, b}) {
          if (base.substr(0, n.size() + 3) == StrCat(n, ".ko")) found = true;
        }
      }
      if (!found) missing.push_back(m);
    }
    if (!missing.empty()) {
      std::string list;
      for (const auto& m : missing) list += StrCat(list.empty() ? "" : ", ", m);
      return absl::InternalError(
          StrCat("the rebuilt initramfs ", initrd, " lacks ", list,
                 " (built in, or the guest's initramfs tool left them out)"));
    }
    Detail(StrCat("checked: ", initrd, " holds every added module"));
    return absl::OkStatus();
  }

  // ----------------------------------------------------------- boot loader
  Status BootConfig() {
    std::vector<std::string> argv;
    if (Exists("/usr/sbin/update-grub") || Exists("/sbin/update-grub")) {
      argv = {"update-grub"};
    } else if (Exists("/usr/sbin/grub2-mkconfig")) {
      argv = {"grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"};
    } else if (Exists("/usr/sbin/grub-mkconfig")) {
      argv = {"grub-mkconfig", "-o", "/boot/grub/grub.cfg"};
    } else {
      return absl::UnimplementedError(
          "the plan regenerates the boot loader configuration, but the guest "
          "has no grub-mkconfig (other boot loaders are not supported yet)");
    }
    CAIRN_RETURN_IF_ERROR(
        GuestCommand(argv, "regenerating the boot loader configuration")
            .status());
    std::string cfg = argv.size() > 2 ? argv[2] : "/boot/grub/grub.cfg";
    report_->add_changed_files(cfg);
    CAIRN_ASSIGN_OR_RETURN(std::optional<std::string> text, ReadGuestFile(cfg));
    if (text.has_value()) {
      for (std::string_view line : SplitLines(*text)) {
        size_t root = line.find(" root=/dev/");
        if (root != std::string_view::npos) {
          return absl::InternalError(
              StrCat(cfg, " still boots by device name after regeneration: '",
                     PrintableUtf8(TrimSpace(line)), "'"));
        }
      }
    }
    Detail(StrCat(argv[0], " regenerated ", cfg));
    if (plan_.has_template_kernel()) {
      return GrubDefaultToTemplateKernel(argv, cfg);
    }
    return absl::OkStatus();
  }

  Status DisableUnits() {
    for (const std::string& u : plan_.disable_units()) {
      CAIRN_RETURN_IF_ERROR(
          GuestCommand({"systemctl", "disable", u}, StrCat("disabling ", u))
              .status());
      Detail(StrCat("disabled ", u));
    }
    return absl::OkStatus();
  }

 public:
  Status Run(v1::CustomizationReport* report) {
    report_ = report;
    Step("launching the appliance");
    auto launch_start = Clock::now();
    GuestfsApplianceOptions ao;
    ao.drives.push_back(
        GuestfsDrive{.path = overlay_, .format = "qcow2", .readonly = false});
    if (has_template_) {
      ao.drives.push_back(GuestfsDrive{.path = o_.template_path,
                                       .nbd_socket = o_.template_nbd_socket,
                                       .format = o_.template_nbd_socket.empty()
                                                     ? o_.template_format
                                                     : std::string("raw"),
                                       .readonly = true});
    }
    ao.identifier = "cairn-restore-build";
    ao.launch_timeout = o_.launch_timeout;
    ao.call_timeout = o_.call_timeout;
    ao.memsize_mib = 1024;  // mkinitramfs and zstd want more than 768
    ao.autosync = true;
    CAIRN_ASSIGN_OR_RETURN(a_, GuestfsAppliance::Launch(ao));
    g_ = a_->g();
    report_->set_launch_seconds(SecondsSince(launch_start));

    auto edit_start = Clock::now();
    CAIRN_ASSIGN_OR_RETURN(std::string root, InspectRoot());
    CAIRN_RETURN_IF_ERROR(Timed("shrink", [&] { return Shrink(); }));
    CAIRN_RETURN_IF_ERROR(Timed("grow", [&] { return Grow(); }));
    if (plan_.esp_bytes() > 0) {
      CAIRN_RETURN_IF_ERROR(Timed("esp", [&] { return CreateEsp(); }));
    }
    CAIRN_RETURN_IF_ERROR(MountAll(root));
    CAIRN_RETURN_IF_ERROR(Timed("grow-mounted", [&] { return GrowMounted(); }));
    if (has_template_) {
      CAIRN_RETURN_IF_ERROR(
          Timed("template-kernel", [&] { return CopyTemplateKernel(); }));
    }
    CAIRN_RETURN_IF_ERROR(CheckKernel());
    if (plan_.stable_device_references()) {
      CAIRN_RETURN_IF_ERROR(
          Timed("device-references", [&] { return StableReferences(); }));
    }
    if (!plan_.nic_renames().empty()) {
      CAIRN_RETURN_IF_ERROR(Timed("network", [&] { return Network(); }));
    }
    double edits = SecondsSince(edit_start);
    auto initramfs_start = Clock::now();
    if (plan_.rebuild_initramfs() || !plan_.initramfs_modules().empty()) {
      CAIRN_RETURN_IF_ERROR(Timed("initramfs", [&] { return Initramfs(); }));
    }
    report_->set_initramfs_seconds(SecondsSince(initramfs_start));
    auto more_edits = Clock::now();
    if (plan_.esp_bytes() > 0) {
      CAIRN_RETURN_IF_ERROR(Timed("uefi", [&] { return InstallUefiGrub(); }));
    }
    if (plan_.regenerate_boot_config() || grub_defaults_changed_) {
      CAIRN_RETURN_IF_ERROR(Timed("boot-loader", [&] { return BootConfig(); }));
    }
    if (!plan_.disable_units().empty()) {
      CAIRN_RETURN_IF_ERROR(Timed("units", [&] { return DisableUnits(); }));
    }
    report_->set_edit_seconds(edits + SecondsSince(more_edits));

    Step("syncing and shutting the appliance down");
    auto shutdown_start = Clock::now();
    if (Call("unmounting", [&] { return guestfs_umount_all(g_); }) == -1) {
      return a_->Error(absl::StatusCode::kInternal, "unmounting");
    }
    CAIRN_RETURN_IF_ERROR(a_->Shutdown());
    report_->set_shutdown_seconds(SecondsSince(shutdown_start));
    if (shrink_from_ > 0) {
      CAIRN_RETURN_IF_ERROR(
          Timed("shrink-disk", [&] { return FinishShrink(); }));
    }
    return absl::OkStatus();
  }

 private:
  const ImageCustomizerOptions& o_;
  const v1::CustomizationPlan& plan_;
  const std::string overlay_;
  std::unique_ptr<GuestfsAppliance> a_;
  guestfs_h* g_ = nullptr;
  v1::CustomizationReport* report_ = nullptr;
  std::string detail_;
  std::map<std::string, std::string> mounted_;  // mount point -> device
  std::vector<std::string> mount_notes_;
  std::string grow_mounted_, grow_mounted_fs_;
  uint64_t shrink_from_ = 0;  // the disk's size before Shrink(); 0: none
  bool shrink_gpt_ = false;
  int64_t esp_start_ = 0, esp_end_ = 0;  // sectors, set by Grow()
  std::string esp_table_;                // "msdos" or "gpt"
  std::string esp_device_;               // set by CreateEsp()
  bool grub_defaults_changed_ = false;
  const bool has_template_;  // the template image is drive 2 (/dev/sdb)
  std::vector<std::string> template_roots_;  // set by InspectRoot()
};

}  // namespace

bool PlanChangesAnything(const v1::CustomizationPlan& p) {
  return !p.initramfs_modules().empty() || p.rebuild_initramfs() ||
         p.stable_device_references() || !p.nic_renames().empty() ||
         (p.target_disk_bytes() != 0 &&
          p.target_disk_bytes() != p.source_disk_bytes()) ||
         p.esp_bytes() > 0 || p.regenerate_boot_config() ||
         !p.disable_units().empty() || p.has_template_kernel();
}

Status ValidateCustomizationPlan(const v1::CustomizationPlan& plan) {
  if (plan.format_version() != 1) {
    return absl::InvalidArgumentError(
        StrCat("customization plan format version ", plan.format_version(),
               " is not supported (this builder reads version 1)"));
  }
  if (!plan.blockers().empty()) {
    std::string list;
    for (const auto& b : plan.blockers()) list += StrCat("\n  - ", b);
    return absl::FailedPreconditionError(
        StrCat("the restore plan has unresolved blockers:", list));
  }
  if (!plan.kernel_version().empty() &&
      !IsValidKernelVersion(plan.kernel_version())) {
    return absl::InvalidArgumentError(StrCat(
        "invalid kernel version '", PrintableUtf8(plan.kernel_version()), "'"));
  }
  if (plan.has_template_kernel()) {
    const v1::TemplateKernel& t = plan.template_kernel();
    if (t.image_id().empty()) {
      return absl::InvalidArgumentError(
          "the plan boots a boot template's kernel but names no template "
          "image");
    }
    if (t.kernel_version().empty() ||
        t.kernel_version() != plan.kernel_version()) {
      return absl::InvalidArgumentError(StrCat(
          "the plan's template kernel '", PrintableUtf8(t.kernel_version()),
          "' is not the kernel it boots ('",
          PrintableUtf8(plan.kernel_version()), "')"));
    }
  }
  for (const auto& m : plan.initramfs_modules()) {
    if (!IsValidModuleName(m)) {
      return absl::InvalidArgumentError(
          StrCat("invalid module name '", PrintableUtf8(m), "'"));
    }
  }
  for (const auto& u : plan.disable_units()) {
    if (!IsValidUnitName(u)) {
      return absl::InvalidArgumentError(
          StrCat("invalid systemd unit name '", PrintableUtf8(u), "'"));
    }
  }
  for (const auto& r : plan.nic_renames()) {
    for (const std::string* n : {&r.source_name(), &r.target_name()}) {
      if (!n->empty() && !IsValidModuleName(*n)) {  // same character set
        return absl::InvalidArgumentError(
            StrCat("invalid NIC name '", PrintableUtf8(*n), "'"));
      }
    }
  }
  auto mode = [](v1::FirmwareMode m) {
    return m == v1::FIRMWARE_MODE_UNSPECIFIED ? v1::FIRMWARE_MODE_BIOS : m;
  };
  const bool to_uefi = mode(plan.source_firmware()) == v1::FIRMWARE_MODE_BIOS &&
                       plan.target_firmware() == v1::FIRMWARE_MODE_UEFI;
  if (plan.target_firmware() != v1::FIRMWARE_MODE_UNSPECIFIED &&
      mode(plan.source_firmware()) != mode(plan.target_firmware()) &&
      !(to_uefi && plan.esp_bytes() > 0)) {
    return absl::UnimplementedError(
        to_uefi ? "a BIOS -> UEFI conversion needs an EFI System Partition "
                  "size (esp_bytes) in the plan"
                : "converting the boot mode UEFI -> BIOS is not supported yet");
  }
  if (plan.esp_bytes() > 0) {
    if (!to_uefi) {
      return absl::InvalidArgumentError(
          "esp_bytes is only for a BIOS -> UEFI conversion");
    }
    if (plan.esp_bytes() < (32ull << 20) || plan.esp_bytes() > (1ull << 30)) {
      return absl::InvalidArgumentError(
          "esp_bytes must be between 32 MiB and 1 GiB");
    }
    if (plan.target_disk_bytes() <
        plan.source_disk_bytes() + plan.esp_bytes() + (1 << 20)) {
      return absl::InvalidArgumentError(StrCat(
          "no room for a ", plan.esp_bytes(),
          "-byte EFI System Partition: the target disk must grow by more "
          "than that"));
    }
  }
  // A smaller target disk is checked against the image when the build
  // runs (step "shrink").
  return absl::OkStatus();
}

StatusOr<CustomizedOverlay> CustomizeImage(
    const ImageCustomizerOptions& options) {
  CAIRN_RETURN_IF_ERROR(ValidateCustomizationPlan(options.plan));
  if (options.base_nbd_socket.empty() == options.base_path.empty()) {
    return absl::InvalidArgumentError(
        "restore build: give exactly one of a base NBD socket and a base "
        "image");
  }
  if (options.plan.has_template_kernel() &&
      options.template_nbd_socket.empty() == options.template_path.empty()) {
    return absl::InvalidArgumentError(StrCat(
        "restore build: the plan boots the kernel of boot template image ",
        options.plan.template_kernel().image_id(),
        ": give exactly one of its NBD socket and an image file"));
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(options.work_dir, ec)) {
    return absl::InvalidArgumentError(StrCat(
        "restore build: work directory ", options.work_dir, " does not exist"));
  }
  std::string backing =
      options.base_nbd_socket.empty()
          ? std::filesystem::absolute(options.base_path).string()
          : StrCat("nbd+unix:///?socket=", options.base_nbd_socket);
  std::string format =
      options.base_nbd_socket.empty() ? options.base_format : "raw";
  std::string overlay = StrCat(options.work_dir, "/customized.qcow2");
  std::vector<std::string> argv = {options.qemu_img, "create", "-q",   "-f",
                                   "qcow2",          "-F",     format, "-b",
                                   backing,          overlay};
  // A shrink works on the image at its source size (the backing file's:
  // no size given) and cuts the overlay at the end.
  if (options.plan.target_disk_bytes() > 0 &&
      options.plan.target_disk_bytes() >= options.plan.source_disk_bytes()) {
    argv.push_back(std::to_string(options.plan.target_disk_bytes()));
  }
  CAIRN_ASSIGN_OR_RETURN(CommandResult created,
                         RunCommand(argv, absl::Seconds(120)));
  if (created.exit_code != 0) {
    return absl::InternalError(
        StrCat("qemu-img create of the overlay failed: ",
               PrintableUtf8(TrimSpace(created.output))));
  }
  CustomizedOverlay result;
  result.overlay_path = overlay;
  Status s;
  if (!PlanChangesAnything(options.plan)) {
    // Mounting alone would change the image (superblock times, journal):
    // a plan with nothing to do leaves the overlay empty, so the result is
    // the backup, chunk for chunk.
    v1::CustomizationStepResult* r = result.report.add_steps();
    r->set_step("nothing");
    r->set_detail("the plan changes nothing: no appliance was started");
  } else {
    Build build(options, overlay);
    s = build.Run(&result.report);
  }
  if (!s.ok()) {
    std::filesystem::remove(overlay, ec);
    return s;
  }
  CAIRN_ASSIGN_OR_RETURN(
      CommandResult info,
      RunCommand({options.qemu_img, "info", "--output=json", "-U", overlay},
                 absl::Seconds(60)));
  nlohmann::json j = nlohmann::json::parse(info.output, nullptr, false);
  if (info.exit_code != 0 || !j.is_object() || !j.contains("virtual-size") ||
      !j["virtual-size"].is_number_unsigned()) {
    std::filesystem::remove(overlay, ec);
    return absl::InternalError(StrCat("qemu-img info of the overlay failed: ",
                                      PrintableUtf8(TrimSpace(info.output))));
  }
  result.virtual_size = j["virtual-size"].get<uint64_t>();
  return result;
}

}  // namespace cairn
