#include "server/customization_plan.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <set>

#include "common/coding.h"
#include "common/crypto.h"
#include "common/strings.h"
#include "server/profile_diff.h"

namespace cairn {
namespace {

// The EFI System Partition a BIOS -> UEFI conversion creates.
constexpr uint64_t kEspBytes = 128ull << 20;

bool Unstable(v1::DeviceRefKind k) {
  return k == v1::DEVICE_REF_KIND_DEVICE_NAME ||
         k == v1::DEVICE_REF_KIND_BY_PATH || k == v1::DEVICE_REF_KIND_BY_ID;
}

// A boot loader reference ("FILE: TEXT") that names a disk by kernel name,
// by-path or by-id.
bool UnstableBootReference(std::string_view ref) {
  for (std::string_view p :
       {"/dev/sd", "/dev/vd", "/dev/hd", "/dev/xvd", "/dev/nvme", "/dev/mmcblk",
        "/dev/disk/by-path/", "/dev/disk/by-id/"}) {
    if (ref.find(p) != std::string_view::npos) return true;
  }
  return false;
}

std::string ModeName(v1::FirmwareMode m) {
  switch (m) {
    case v1::FIRMWARE_MODE_BIOS:
      return "BIOS";
    case v1::FIRMWARE_MODE_UEFI:
      return "UEFI";
    default:
      return "unknown firmware";
  }
}

// The "use-template-kernel" choice. Returns whether the plan boots the
// template's kernel; then plan->kernel_version and template_kernel are set,
// a step says what is installed and why, and *add holds the modules that
// kernel's initramfs needs for the target's boot path. Without a template,
// or with one whose kernel cannot drive a device either, blockers.
StatusOr<bool> PlanTemplateKernel(const v1::ProfileDiffPlan& diff,
                                  const v1::HardwareProfile& target,
                                  const CustomizationPlanOptions& options,
                                  v1::CustomizationPlan* plan,
                                  std::vector<std::string>* add) {
  std::vector<const v1::DeviceConflict*> chosen;
  for (const auto& c : diff.conflicts()) {
    if (c.chosen() == kUseTemplateKernel) chosen.push_back(&c);
  }
  if (chosen.empty()) return false;
  if (options.template_profile == nullptr ||
      options.template_image_id.empty()) {
    for (const auto* c : chosen) {
      plan->add_blockers(StrCat(
          "device ", c->device(),
          ": the template kernel was chosen but no template was given (",
          options.template_profile == nullptr
              ? "pass the template's profile and image: --template-profile "
                "FILE --template-image ID, or --template NAME through the "
                "server"
              : "the template's image id is missing",
          ")"));
    }
    return false;
  }
  const std::string tname =
      options.template_name.empty()
          ? StrCat("image ", options.template_image_id)
          : StrCat("'", options.template_name, "' (image ",
                   options.template_image_id, ")");
  // The template's kernel against the target: which of its modules the
  // target's boot path needs, and whether it drives every device.
  auto tdiff = ProfileDiff(*options.template_profile, target, {});
  if (!tdiff.ok()) {
    return Status(
        tdiff.status().code(),
        StrCat("template ", tname, ": ", ToStd(tdiff.status().message())));
  }
  const std::string& kver = tdiff->source_kernel();
  bool lacking = false;
  for (const auto& c : tdiff->conflicts()) {
    lacking = true;
    plan->add_blockers(StrCat("device ", c.device(), ": the kernel ", kver,
                              " of template ", tname,
                              " cannot drive it either (", c.reason(), ")"));
  }
  if (lacking) return false;
  add->clear();
  for (const auto& m : tdiff->modules()) {
    // The initramfs is created in the restored system with its own
    // configuration, so every boot-critical module that is not built in
    // goes in, including those the template's own initramfs has.
    if (m.boot_critical() &&
        (m.placement() == v1::MODULE_PLACEMENT_ADD_TO_INITRAMFS ||
         m.placement() == v1::MODULE_PLACEMENT_IN_INITRAMFS)) {
      add->push_back(m.module());
    }
  }
  v1::TemplateKernel* t = plan->mutable_template_kernel();
  t->set_template_name(options.template_name);
  t->set_image_id(options.template_image_id);
  t->set_kernel_version(kver);
  t->set_template_profile_sha256(
      options.template_profile_sha256.empty()
          ? ProfileSha256Hex(*options.template_profile)
          : options.template_profile_sha256);
  plan->set_kernel_version(kver);
  std::string devices;
  for (const auto* c : chosen) {
    devices += StrCat(devices.empty() ? "" : ", ", c->device());
  }
  plan->add_steps(StrCat(
      "install kernel ", kver, " from boot template ", tname,
      ": the source kernel ", diff.source_kernel(), " has no driver for ",
      devices, " and use-template-kernel was chosen; copy /boot/vmlinuz-", kver,
      ", config-", kver, ", System.map-", kver, " and /lib/modules/", kver,
      " from the template",
      kver == diff.source_kernel()
          ? StrCat(" (the same version as the source's: the template's "
                   "module tree replaces the source's)")
          : std::string(),
      ", run depmod, and boot it instead of ", diff.source_kernel()));
  return true;
}

// The diff's blocker for a target disk that the source's partitions do
// not fit unchanged ("shrink-blocked", server/profile_diff.cc).
bool IsShrinkBlockedByDiff(const v1::ProfileDiffPlan& diff,
                           std::string_view blocker) {
  for (const auto& d : diff.disk_changes()) {
    if (d.size_change() != "shrink-blocked") continue;
    const std::string prefix =
        StrCat("target disk ", d.target_disk(), " (", d.target_size_bytes(),
               " bytes) is smaller than the partitions of source disk ",
               d.source_disk());
    if (blocker.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

// A smaller target disk: only the last partition (by end) shrinks, with
// its ext2/3/4 file system, when the data fits (checked when the build
// runs: the profile does not know how full it is). What the profile's
// partition geometry already rules out is a blocker: another partition
// ending beyond the target's usable end (GPT keeps 33 sectors for its
// backup header; ends are 1 MiB aligned), a last partition that would
// vanish, a file system that is not ext2/3/4. Mirrors
// media_agent/disk_shrink.h, which the build checks against the image.
void ShrinkStep(const v1::HardwareProfile& source, const v1::DiskChange& d,
                v1::CustomizationPlan* plan) {
  constexpr uint64_t kMiB = 1ull << 20;
  const v1::Disk* disk = nullptr;
  for (const auto& x : source.disks()) {
    if (x.name() == d.source_disk()) disk = &x;
  }
  const std::string head =
      StrCat("shrink the disk from ", d.source_size_bytes(), " to ",
             d.target_size_bytes(), " bytes: ");
  if (disk == nullptr || disk->partitions().empty()) {
    plan->add_steps(StrCat(
        head,
        "the last partition and its file system (ext2/3/4) shrink if the "
        "data fits (the profile has no partition geometry; checked when "
        "the build runs)"));
    return;
  }
  const bool gpt = disk->partition_table_type() == "gpt";
  const uint64_t sector =
      disk->logical_sector_size() != 0 ? disk->logical_sector_size() : 512;
  const uint64_t sectors = d.target_size_bytes() / sector;
  const uint64_t usable =
      sectors > (gpt ? 33 : 0) ? (sectors - (gpt ? 33 : 0)) * sector : 0;
  const uint64_t new_end = usable / kMiB * kMiB;
  const v1::Partition* last = nullptr;
  for (const auto& p : disk->partitions()) {
    if (last == nullptr || p.start_bytes() + p.size_bytes() >
                               last->start_bytes() + last->size_bytes()) {
      last = &p;
    }
  }
  const uint64_t last_end = last->start_bytes() + last->size_bytes();
  for (const auto& p : disk->partitions()) {
    if (&p == last) continue;
    if (p.start_bytes() + p.size_bytes() > new_end) {
      plan->add_blockers(StrCat(
          "the target disk ", d.target_disk(), " (", d.target_size_bytes(),
          " bytes) is too small: partition ", p.name(), " ends at byte ",
          p.start_bytes() + p.size_bytes(), ", beyond the ", new_end,
          " bytes the partitions may use, and only the last partition (",
          last->name(), ") can shrink"));
      return;
    }
  }
  if (last_end <= new_end) {
    plan->add_steps(StrCat(
        head, "the partitions end at byte ", last_end, " and fit unchanged",
        gpt ? "; the GPT backup header moves to the new end" : ""));
    return;
  }
  if (new_end < last->start_bytes() + kMiB) {
    plan->add_blockers(
        StrCat("the target disk ", d.target_disk(), " (", d.target_size_bytes(),
               " bytes) is too small: the last partition ", last->name(),
               " starts at byte ", last->start_bytes()));
    return;
  }
  const std::string& fs = last->fs_type();
  if (!fs.empty() && fs != "ext2" && fs != "ext3" && fs != "ext4") {
    plan->add_blockers(StrCat(
        "the target disk ", d.target_disk(), " (", d.target_size_bytes(),
        " bytes) is smaller than the partitions, and the last partition ",
        last->name(), " holds ", fs,
        fs == "xfs" ? ", which cannot shrink"
                    : ", which restore builds do not shrink (ext2/3/4 only)"));
    return;
  }
  plan->add_steps(
      StrCat(head, "the last partition ", last->name(), " (",
             fs.empty() ? std::string("file system not in the profile") : fs,
             ") and its file system shrink from ", last->size_bytes(), " to ",
             new_end - last->start_bytes(),
             " bytes if the data fits: its minimum size (resize2fs -P) plus "
             "max(64 MiB, 5%) headroom, checked when the build runs",
             gpt ? "; the GPT backup header moves to the new end" : ""));
}

}  // namespace

StatusOr<v1::CustomizationPlan> PlanCustomization(
    const v1::HardwareProfile& source, const v1::HardwareProfile& target,
    const v1::ProfileDiffPlan& diff, const CustomizationPlanOptions& options) {
  v1::CustomizationPlan plan;
  plan.set_format_version(1);
  plan.set_source_backup_id(options.source_backup_id);
  plan.set_target(options.target);
  plan.set_source_profile_sha256(options.source_profile_sha256);
  plan.set_target_profile_sha256(options.target_profile_sha256);
  plan.set_kernel_version(diff.source_kernel());
  for (const std::string& b : diff.blockers()) {
    // The diff blocks a target disk its partitions do not fit as they are;
    // a restore build can shrink the last partition, so ShrinkStep decides.
    if (IsShrinkBlockedByDiff(diff, b)) continue;
    plan.add_blockers(b);
  }

  // Boot mode first: a BIOS -> UEFI conversion takes room at the disk's end.
  const v1::BootModeChange& b = diff.boot_mode();
  plan.set_source_firmware(b.source_mode());
  plan.set_target_firmware(b.target_mode());
  uint64_t source_bytes = 0, target_bytes = 0;
  if (!diff.disk_changes().empty()) {
    source_bytes = diff.disk_changes(0).source_size_bytes();
    target_bytes = diff.disk_changes(0).target_size_bytes();
  }
  if (b.changes()) {
    if (b.source_mode() == v1::FIRMWARE_MODE_BIOS &&
        b.target_mode() == v1::FIRMWARE_MODE_UEFI) {
      if (b.target_secure_boot() == v1::SECURE_BOOT_ENABLED) {
        plan.add_blockers(
            "Secure Boot is enabled on the target: a converted image boots "
            "an unsigned GRUB; disable Secure Boot on the target first");
      } else if (target_bytes < source_bytes + kEspBytes + (1 << 20)) {
        plan.add_blockers(StrCat(
            "BIOS -> UEFI needs room for an EFI System Partition: the target "
            "disk must be at least ",
            source_bytes + kEspBytes + (1 << 20), " bytes (it has ",
            target_bytes, ")"));
      } else {
        plan.set_esp_bytes(kEspBytes);
      }
    } else {
      plan.add_blockers(
          StrCat("converting the boot mode (", ModeName(b.source_mode()),
                 " -> ", ModeName(b.target_mode()), ") is not supported yet"));
    }
  }

  // 1. Disk size (done first: before anything is mounted).
  if (!diff.disk_changes().empty()) {
    const v1::DiskChange& d = diff.disk_changes(0);
    plan.set_source_disk_bytes(d.source_size_bytes());
    plan.set_target_disk_bytes(d.target_size_bytes());
    if (d.size_change() == "grow") {
      plan.add_steps(StrCat(
          "grow the disk from ", d.source_size_bytes(), " to ",
          d.target_size_bytes(),
          " bytes: the last partition and its file "
          "system fill it",
          plan.esp_bytes() > 0
              ? StrCat(" but the last ", plan.esp_bytes(),
                       " bytes, where a new EFI System Partition (FAT) goes")
              : std::string()));
    } else if (d.size_change() == "shrink-fits" ||
               d.size_change() == "shrink-blocked") {
      ShrinkStep(source, d, &plan);
    }
  }

  // 2. Device references.
  std::vector<std::string> refs;
  for (const auto& e : source.fstab()) {
    if (Unstable(e.ref_kind())) {
      refs.push_back(StrCat("/etc/fstab line ", e.line(), ": ", e.spec(), " (",
                            e.mount_point(), ")"));
    }
  }
  for (const auto& e : source.crypttab()) {
    if (Unstable(e.ref_kind())) {
      refs.push_back(StrCat("/etc/crypttab line ", e.line(), ": ", e.device()));
    }
  }
  bool boot_refs = false;
  for (const auto& r : source.boot_loader().device_references()) {
    if (UnstableBootReference(r)) {
      boot_refs = true;
      refs.push_back(r);
    }
  }
  if (!refs.empty()) {
    plan.set_stable_device_references(true);
    std::string list;
    for (const auto& r : refs) list += StrCat("; ", r);
    plan.add_steps(StrCat("rewrite references by device name to UUID=", list));
  }

  // 3. NICs.
  for (const auto& m : diff.nic_mappings()) {
    if (m.source_name() == m.target_name() &&
        m.source_mac() == m.target_mac()) {
      continue;
    }
    v1::NicRename* r = plan.add_nic_renames();
    r->set_source_name(m.source_name());
    r->set_source_mac(m.source_mac());
    r->set_target_name(m.target_name());
    r->set_target_mac(m.target_mac());
    plan.add_steps(StrCat(
        "network configuration: ", m.source_name(), " (", m.source_mac(),
        ") -> ", m.target_name(), " (", m.target_mac(),
        ") in ifupdown, netplan, NetworkManager, systemd-networkd and udev "
        "rules; addresses kept"));
  }

  // 4. Initramfs.
  std::vector<std::string> add;
  for (const auto& m : diff.modules()) {
    if (m.placement() == v1::MODULE_PLACEMENT_ADD_TO_INITRAMFS) {
      add.push_back(m.module());
    }
  }
  CAIRN_ASSIGN_OR_RETURN(
      bool template_kernel,
      PlanTemplateKernel(diff, target, options, &plan, &add));
  if (!add.empty() || template_kernel) {
    for (const auto& m : add) plan.add_initramfs_modules(m);
    plan.set_rebuild_initramfs(true);
    std::string list;
    for (const auto& m : add) list += StrCat(list.empty() ? "" : " ", m);
    plan.add_steps(
        add.empty()
            ? StrCat("create the initramfs of kernel ", plan.kernel_version(),
                     " with the guest's own tool")
            : StrCat("add ", list, " to the initramfs of kernel ",
                     plan.kernel_version(),
                     template_kernel
                         ? " and build it with the guest's own tool"
                         : " and rebuild it with the guest's own tool"));
  }

  // 5. Boot loader.
  if (plan.esp_bytes() > 0) {
    plan.set_regenerate_boot_config(true);
    plan.add_steps(
        "BIOS -> UEFI: mount the new EFI System Partition at /boot/efi "
        "(fstab, by UUID), install GRUB for x86_64-efi at the removable path "
        "\\EFI\\BOOT\\BOOTX64.EFI (the target's NVRAM is not touched) and "
        "regenerate its configuration; grub-pc stays installed");
    if (plan.has_template_kernel()) {
      plan.add_steps(StrCat("make kernel ", plan.kernel_version(),
                            " GRUB's default entry"));
    }
  } else if (boot_refs || plan.has_template_kernel()) {
    plan.set_regenerate_boot_config(true);
    plan.add_steps(
        plan.has_template_kernel()
            ? StrCat("regenerate the boot loader configuration (update-grub) "
                     "and make kernel ",
                     plan.kernel_version(), " GRUB's default entry")
            : std::string("regenerate the boot loader configuration "
                          "(update-grub) so it boots by UUID"));
  }

  // 6. Guest tools.
  if (options.drop_guest_tools) {
    const std::string& hv = target.platform().hypervisor();
    std::set<std::string> units;
    for (const auto& h : source.hypervisor_software()) {
      if (h.kind() != v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS ||
          h.platform() == hv) {
        continue;
      }
      for (const auto& u : h.enabled_units()) {
        if (units.insert(u).second) {
          plan.add_disable_units(u);
          plan.add_steps(StrCat("disable ", u, " (", h.package(),
                                ": guest tools for ", h.platform(), ")"));
        }
      }
    }
  }
  if (plan.steps().empty()) {
    plan.add_steps("nothing to change: the image boots on the target as it is");
  }
  return plan;
}

std::string ProfileSha256Hex(const v1::HardwareProfile& profile) {
  v1::HardwareProfile canonical = profile;
  canonical.clear_collected_unix_us();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    canonical.SerializeToCodedStream(&coded);
  }
  crypto::Digest d = crypto::Sha256(bytes);
  return HexEncode(
      std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

std::string RenderCustomizationPlanText(const v1::CustomizationPlan& plan) {
  std::string out = StrCat("Restore build of ", plan.source_backup_id(),
                           " for ", plan.target(), ":\n");
  int n = 0;
  if (plan.has_template_kernel()) {
    const v1::TemplateKernel& t = plan.template_kernel();
    out +=
        StrCat("Boots kernel ", t.kernel_version(), " of boot template ",
               t.template_name().empty() ? "" : StrCat(t.template_name(), " "),
               "(image ", t.image_id(), "), not the source's own.\n");
  }
  for (const auto& s : plan.steps()) out += StrCat("  ", ++n, ". ", s, "\n");
  if (plan.blockers().empty()) {
    out += "Ready to build.\n";
  } else {
    out += StrCat("Blockers (", plan.blockers_size(), "):\n");
    for (const auto& b : plan.blockers()) out += StrCat("  - ", b, "\n");
  }
  return out;
}

StatusOr<std::string> CustomizationPlanToJson(
    const v1::CustomizationPlan& plan) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.add_whitespace = true;
  auto s = google::protobuf::util::MessageToJsonString(plan, &out, o);
  if (!s.ok()) {
    return absl::InternalError(StrCat("plan to JSON: ", s.ToString()));
  }
  return out;
}

StatusOr<v1::CustomizationPlan> CustomizationPlanFromJson(
    const std::string& json) {
  v1::CustomizationPlan plan;
  google::protobuf::util::JsonParseOptions o;
  auto s = google::protobuf::util::JsonStringToMessage(json, &plan, o);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        StrCat("not a restore build plan (JSON): ", s.ToString()));
  }
  return plan;
}

}  // namespace cairn
