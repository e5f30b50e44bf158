#include "agent/profile_collector.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <set>

#include "agent/profile_config_parsers.h"
#include "agent/root_dir.h"
#include "common/initramfs_reader.h"
#include "common/module_index.h"
#include "common/strings.h"

namespace cairn {
namespace {

using profile::ParseCrypttab;
using profile::ParseFstab;

constexpr size_t kMaxIndexFile = 32u << 20;  // modules.alias is ~1.3 MiB
constexpr size_t kMaxDpkgStatus = 64u << 20;
constexpr int kMaxChildDepth = 8;
constexpr char kEfiGlobalGuid[] = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

std::string_view TrimNl(std::string_view s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == ' ' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::string_view Trim(std::string_view s) { return TrimSpace(s); }

std::string Join(std::string_view dir, std::string_view name) {
  if (dir == "/") return StrCat("/", name);
  return StrCat(dir, "/", name);
}

bool StartsWith(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
         (c >= 'A' && c <= 'F');
}

// "0000:00:1f.2"
bool IsPciAddress(std::string_view s) {
  if (s.size() != 12) return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (!IsHex(s[i])) return false;
  return s[4] == ':' && s[7] == ':' && s[10] == '.' && s[11] >= '0' &&
         s[11] <= '7';
}

std::vector<std::string_view> Lines(std::string_view text) {
  return SplitLines(text);
}

StatusOr<uint64_t> ParseU64(std::string_view text, std::string_view path) {
  std::string_view t = Trim(text);
  uint64_t v = 0;
  auto r = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || r.ec != std::errc() || r.ptr != t.data() + t.size()) {
    return absl::DataLossError(StrCat(
        path, ": expected a decimal number, got '", t.substr(0, 40), "'"));
  }
  return v;
}

StatusOr<uint32_t> ParseHex(std::string_view text, std::string_view path) {
  std::string_view t = Trim(text);
  if (StartsWith(t, "0x") || StartsWith(t, "0X")) t.remove_prefix(2);
  uint32_t v = 0;
  auto r = std::from_chars(t.data(), t.data() + t.size(), v, 16);
  if (t.empty() || t.size() > 8 || r.ec != std::errc() ||
      r.ptr != t.data() + t.size()) {
    return absl::DataLossError(StrCat(path,
                                      ": expected a hex number like 0x8086, "
                                      "got '",
                                      Trim(text).substr(0, 40), "'"));
  }
  return v;
}

// The profile under construction, with the root it reads.
class Collector {
 public:
  Collector(const RootDir& root, const CollectOptions& options,
            v1::HardwareProfile* p)
      : root_(root), options_(options), p_(p) {}

  Status Run() {
    CAIRN_RETURN_IF_ERROR(CollectOs());
    if (options_.read_machine_state) {
      CAIRN_RETURN_IF_ERROR(CollectFirmware());
      CAIRN_RETURN_IF_ERROR(CollectCpuAndMemory());
      CAIRN_RETURN_IF_ERROR(CollectPlatform());
      CAIRN_RETURN_IF_ERROR(CollectPci());
      CAIRN_RETURN_IF_ERROR(CollectDisks());
      CAIRN_RETURN_IF_ERROR(CollectNics());
    }
    CAIRN_RETURN_IF_ERROR(CollectKernels());
    CAIRN_RETURN_IF_ERROR(CollectPackages());
    CAIRN_RETURN_IF_ERROR(CollectNetworkConfig());
    CAIRN_RETURN_IF_ERROR(CollectBootLoader());
    CAIRN_RETURN_IF_ERROR(CollectFstabCrypttab());
    return absl::OkStatus();
  }

 private:
  void Warn(std::string w) { p_->add_warnings(std::move(w)); }

  // A sysfs/procfs attribute: trimmed contents, or nullopt when the file is
  // absent or the kernel has no value for it right now.
  StatusOr<std::optional<std::string>> Attr(std::string_view path) {
    auto r = root_.ReadOptional(path);
    if (absl::IsUnavailable(r.status())) return std::optional<std::string>();
    if (!r.ok()) return r.status();
    if (!r->has_value()) return std::optional<std::string>();
    return std::optional<std::string>(std::string(TrimNl(**r)));
  }

  StatusOr<std::string> AttrOrEmpty(std::string_view path) {
    CAIRN_ASSIGN_OR_RETURN(auto v, Attr(path));
    return v.value_or("");
  }

  // Name of the driver bound to the device at sysfs path `dev` (a resolved
  // path): the last component of its "driver" link, resolved textually.
  StatusOr<std::string> DriverOf(std::string_view dev) {
    CAIRN_ASSIGN_OR_RETURN(auto link, root_.ReadLink(Join(dev, "driver")));
    if (!link.has_value()) return std::string();
    CAIRN_ASSIGN_OR_RETURN(
        std::string target,
        root_.Resolve(Join(dev, "driver"), RootDir::Missing::kAllowMissing));
    return std::string(Basename(target));
  }

  StatusOr<std::string> SubsystemOf(std::string_view dev) {
    CAIRN_ASSIGN_OR_RETURN(auto link, root_.ReadLink(Join(dev, "subsystem")));
    if (!link.has_value()) return std::string();
    CAIRN_ASSIGN_OR_RETURN(
        std::string target,
        root_.Resolve(Join(dev, "subsystem"), RootDir::Missing::kAllowMissing));
    return std::string(Basename(target));
  }

  // The PCI function a resolved sysfs path sits on: its last component of
  // the form DDDD:BB:DD.F.
  static std::string PciAncestor(std::string_view path) {
    std::string best;
    size_t i = 0;
    while (i < path.size()) {
      size_t j = path.find('/', i);
      if (j == std::string_view::npos) j = path.size();
      std::string_view c = path.substr(i, j - i);
      if (IsPciAddress(c)) best = std::string(c);
      i = j + 1;
    }
    return best;
  }

  static std::string PathUpTo(std::string_view path, std::string_view comp) {
    size_t at = path.find(StrCat("/", comp, "/"));
    if (at == std::string_view::npos) {
      if (path.size() >= comp.size() + 1 &&
          path.substr(path.size() - comp.size() - 1) == StrCat("/", comp)) {
        return std::string(path);
      }
      return "";
    }
    return std::string(path.substr(0, at + 1 + comp.size()));
  }

  // /run/udev/data/bMAJ:MIN properties (E: lines), empty when absent.
  StatusOr<std::map<std::string, std::string>> UdevProps(std::string_view dev) {
    std::map<std::string, std::string> out;
    if (dev.empty()) return out;
    CAIRN_ASSIGN_OR_RETURN(auto text,
                           root_.ReadOptional(StrCat("/run/udev/data/b", dev)));
    if (!text.has_value()) return out;
    for (std::string_view line : Lines(*text)) {
      if (!StartsWith(line, "E:")) continue;
      size_t eq = line.find('=');
      if (eq == std::string_view::npos) continue;
      out[std::string(line.substr(2, eq - 2))] =
          std::string(line.substr(eq + 1));
    }
    return out;
  }

  Status CollectOs() {
    CAIRN_ASSIGN_OR_RETURN(auto text, root_.ReadOptional("/etc/os-release"));
    if (!text.has_value()) {
      CAIRN_ASSIGN_OR_RETURN(text, root_.ReadOptional("/usr/lib/os-release"));
    }
    if (text.has_value()) {
      CAIRN_ASSIGN_OR_RETURN(
          auto kv, profile::ParseShellAssignments(*text, "/etc/os-release"));
      p_->mutable_os()->set_id(kv["ID"]);
      p_->mutable_os()->set_version_id(kv["VERSION_ID"]);
      p_->mutable_os()->set_pretty_name(kv["PRETTY_NAME"]);
    } else {
      Warn("no /etc/os-release");
    }
    CAIRN_ASSIGN_OR_RETURN(auto host, Attr("/etc/hostname"));
    if (host.has_value()) p_->mutable_network()->set_hostname(*host);
    return absl::OkStatus();
  }

  Status CollectFirmware() {
    v1::Firmware* fw = p_->mutable_firmware();
    CAIRN_ASSIGN_OR_RETURN(auto kind, root_.KindOf("/sys/firmware/efi"));
    if (kind == RootDir::Kind::kDirectory) {
      fw->set_mode(v1::FIRMWARE_MODE_UEFI);
      std::string var =
          StrCat("/sys/firmware/efi/efivars/SecureBoot-", kEfiGlobalGuid);
      CAIRN_ASSIGN_OR_RETURN(auto sb, root_.ReadOptional(var, 4096));
      if (!sb.has_value()) {
        fw->set_secure_boot(v1::SECURE_BOOT_UNKNOWN);
      } else if (sb->size() < 5) {
        // efivarfs: 4 bytes of attributes, then the 1-byte value.
        return absl::DataLossError(StrCat(var, ": truncated (", sb->size(),
                                          " bytes; an EFI boolean variable "
                                          "has 4 attribute bytes and 1 value "
                                          "byte)"));
      } else if ((*sb)[4] == 1) {
        fw->set_secure_boot(v1::SECURE_BOOT_ENABLED);
      } else if ((*sb)[4] == 0) {
        fw->set_secure_boot(v1::SECURE_BOOT_DISABLED);
      } else {
        return absl::DataLossError(StrCat(var, ": value byte is ",
                                          static_cast<int>((*sb)[4]),
                                          ", expected 0 or 1"));
      }
    } else if (kind == RootDir::Kind::kMissing) {
      fw->set_mode(v1::FIRMWARE_MODE_BIOS);
      fw->set_secure_boot(v1::SECURE_BOOT_NOT_APPLICABLE);
    } else {
      return absl::DataLossError("/sys/firmware/efi is not a directory");
    }
    CAIRN_ASSIGN_OR_RETURN(*fw->mutable_bios_vendor(),
                           AttrOrEmpty("/sys/class/dmi/id/bios_vendor"));
    CAIRN_ASSIGN_OR_RETURN(*fw->mutable_bios_version(),
                           AttrOrEmpty("/sys/class/dmi/id/bios_version"));
    return absl::OkStatus();
  }

  Status CollectCpuAndMemory() {
    static const std::set<std::string> kFlags = {
        "lm",     "nx",     "vmx",     "svm",    "hypervisor", "aes",
        "avx",    "avx2",   "avx512f", "sse4_1", "sse4_2",     "ssse3",
        "popcnt", "x2apic", "rdrand",  "sha_ni", "pclmulqdq",  "xsave",
        "fma",    "bmi1",   "bmi2",    "movbe",  "cx16",       "pae"};
    CAIRN_ASSIGN_OR_RETURN(std::string cpuinfo,
                           root_.ReadFile("/proc/cpuinfo", 16u << 20));
    v1::Cpu* cpu = p_->mutable_cpu();
    uint32_t processors = 0;
    bool first_done = false;
    for (std::string_view line : Lines(cpuinfo)) {
      if (Trim(line).empty()) {
        if (processors > 0) first_done = true;
        continue;
      }
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) {
        return absl::DataLossError(StrCat("/proc/cpuinfo: line without ':': '",
                                          line.substr(0, 40), "'"));
      }
      std::string_view key = Trim(line.substr(0, colon));
      std::string_view value = Trim(line.substr(colon + 1));
      if (key == "processor") ++processors;
      if (first_done) continue;
      if (key == "vendor_id") cpu->set_vendor(std::string(value));
      if (key == "model name") cpu->set_model_name(std::string(value));
      if (key == "cpu family") {
        CAIRN_ASSIGN_OR_RETURN(auto v,
                               ParseU64(value, "/proc/cpuinfo cpu family"));
        cpu->set_family(static_cast<uint32_t>(v));
      }
      if (key == "model") {
        CAIRN_ASSIGN_OR_RETURN(auto v, ParseU64(value, "/proc/cpuinfo model"));
        cpu->set_model(static_cast<uint32_t>(v));
      }
      if (key == "flags") {
        size_t i = 0;
        while (i < value.size()) {
          size_t j = value.find(' ', i);
          if (j == std::string_view::npos) j = value.size();
          std::string f(value.substr(i, j - i));
          if (kFlags.count(f)) cpu->add_flags(f);
          i = j + 1;
        }
      }
    }
    if (processors == 0) {
      return absl::DataLossError("/proc/cpuinfo: no 'processor' entries");
    }
    cpu->set_logical_cpus(processors);

    CAIRN_ASSIGN_OR_RETURN(std::string meminfo,
                           root_.ReadFile("/proc/meminfo"));
    bool found = false;
    for (std::string_view line : Lines(meminfo)) {
      if (!StartsWith(line, "MemTotal:")) continue;
      std::string_view v = Trim(line.substr(9));
      if (v.size() < 3 || v.substr(v.size() - 3) != " kB") {
        return absl::DataLossError("/proc/meminfo: MemTotal is not in kB");
      }
      CAIRN_ASSIGN_OR_RETURN(auto kb, ParseU64(v.substr(0, v.size() - 3),
                                               "/proc/meminfo MemTotal"));
      p_->mutable_memory()->set_total_bytes(kb * 1024);
      found = true;
    }
    if (!found) return absl::DataLossError("/proc/meminfo: no MemTotal line");
    return absl::OkStatus();
  }

  Status CollectPlatform() {
    v1::Platform* pl = p_->mutable_platform();
    CAIRN_ASSIGN_OR_RETURN(*pl->mutable_system_vendor(),
                           AttrOrEmpty("/sys/class/dmi/id/sys_vendor"));
    CAIRN_ASSIGN_OR_RETURN(*pl->mutable_product_name(),
                           AttrOrEmpty("/sys/class/dmi/id/product_name"));
    CAIRN_ASSIGN_OR_RETURN(std::string xen,
                           AttrOrEmpty("/sys/hypervisor/type"));
    const std::string& v = pl->system_vendor();
    const std::string& prod = pl->product_name();
    std::string hv;
    if (xen == "xen" || v == "Xen")
      hv = "xen";
    else if (v == "QEMU" || StartsWith(prod, "KVM") || v == "Red Hat")
      hv = "kvm";
    else if (StartsWith(v, "VMware"))
      hv = "vmware";
    else if (v == "Microsoft Corporation" && prod == "Virtual Machine")
      hv = "hyperv";
    else if (v == "innotek GmbH" || prod == "VirtualBox")
      hv = "virtualbox";
    bool flag = std::find(p_->cpu().flags().begin(), p_->cpu().flags().end(),
                          "hypervisor") != p_->cpu().flags().end();
    pl->set_hypervisor(hv);
    pl->set_virtual_machine(!hv.empty() || flag);
    return absl::OkStatus();
  }

  // Devices below a PCI function: every real directory (not a symlink, not
  // another PCI function) that has a modalias or a bound driver.
  Status WalkChildren(const std::string& dir, int depth, v1::PciDevice* pci) {
    if (depth > kMaxChildDepth) return absl::OkStatus();
    CAIRN_ASSIGN_OR_RETURN(auto names, root_.List(dir));
    static const std::set<std::string> kSkip = {
        "power",       "msi_irqs", "driver",     "subsystem", "firmware_node",
        "iommu_group", "device",   "statistics", "queues",    "holders",
        "slaves",      "trace",    "mq",         "integrity", "bdi",
        "queue",       "physfn",   "virtfn0"};
    for (const std::string& name : names) {
      if (kSkip.count(name) || IsPciAddress(name)) continue;
      std::string child = Join(dir, name);
      CAIRN_ASSIGN_OR_RETURN(auto link, root_.ReadLink(child));
      if (link.has_value()) continue;  // links point elsewhere in sysfs
      CAIRN_ASSIGN_OR_RETURN(auto kind, root_.KindOf(child));
      if (kind != RootDir::Kind::kDirectory) continue;
      CAIRN_ASSIGN_OR_RETURN(std::string modalias,
                             AttrOrEmpty(Join(child, "modalias")));
      CAIRN_ASSIGN_OR_RETURN(std::string driver, DriverOf(child));
      if (!modalias.empty() || !driver.empty()) {
        v1::BusDevice* d = pci->add_children();
        d->set_name(name);
        d->set_sysfs_path(child);
        d->set_modalias(modalias);
        d->set_driver(driver);
        CAIRN_ASSIGN_OR_RETURN(*d->mutable_bus(), SubsystemOf(child));
      }
      CAIRN_RETURN_IF_ERROR(WalkChildren(child, depth + 1, pci));
    }
    return absl::OkStatus();
  }

  Status CollectPci() {
    CAIRN_ASSIGN_OR_RETURN(auto kind, root_.KindOf("/sys/bus/pci/devices"));
    if (kind != RootDir::Kind::kDirectory) {
      Warn("/sys/bus/pci/devices is missing: no PCI devices recorded");
      return absl::OkStatus();
    }
    CAIRN_ASSIGN_OR_RETURN(auto names, root_.List("/sys/bus/pci/devices"));
    for (const std::string& addr : names) {
      if (!IsPciAddress(addr)) {
        return absl::DataLossError(
            StrCat("/sys/bus/pci/devices/", addr, ": not a PCI address"));
      }
      CAIRN_ASSIGN_OR_RETURN(
          std::string dev,
          root_.Resolve(StrCat("/sys/bus/pci/devices/", addr)));
      v1::PciDevice* pci = p_->add_pci_devices();
      pci->set_address(addr);
      pci->set_sysfs_path(dev);
      struct {
        const char* attr;
        void (v1::PciDevice::*set)(uint32_t);
      } ids[] = {{"vendor", &v1::PciDevice::set_vendor_id},
                 {"device", &v1::PciDevice::set_device_id},
                 {"subsystem_vendor", &v1::PciDevice::set_subsystem_vendor_id},
                 {"subsystem_device", &v1::PciDevice::set_subsystem_device_id},
                 {"class", &v1::PciDevice::set_class_code}};
      for (const auto& id : ids) {
        std::string path = Join(dev, id.attr);
        CAIRN_ASSIGN_OR_RETURN(auto text, Attr(path));
        if (!text.has_value()) continue;
        CAIRN_ASSIGN_OR_RETURN(uint32_t v, ParseHex(*text, path));
        (pci->*id.set)(v);
      }
      CAIRN_ASSIGN_OR_RETURN(*pci->mutable_modalias(),
                             AttrOrEmpty(Join(dev, "modalias")));
      CAIRN_ASSIGN_OR_RETURN(*pci->mutable_driver(), DriverOf(dev));
      CAIRN_RETURN_IF_ERROR(WalkChildren(dev, 0, pci));
    }
    return absl::OkStatus();
  }

  Status CollectDisks() {
    CAIRN_ASSIGN_OR_RETURN(auto kind, root_.KindOf("/sys/block"));
    if (kind != RootDir::Kind::kDirectory) {
      Warn("/sys/block is missing: no disks recorded");
      return absl::OkStatus();
    }
    CAIRN_ASSIGN_OR_RETURN(auto names, root_.List("/sys/block"));
    for (const std::string& name : names) {
      CAIRN_ASSIGN_OR_RETURN(std::string path,
                             root_.Resolve(StrCat("/sys/block/", name),
                                           RootDir::Missing::kAllowMissing));
      if (StartsWith(path, "/sys/devices/virtual/")) continue;  // loop, dm, md
      v1::Disk* d = p_->add_disks();
      d->set_name(name);
      d->set_sysfs_path(path);
      std::string size_path = Join(path, "size");
      CAIRN_ASSIGN_OR_RETURN(std::string size_text, root_.ReadFile(size_path));
      CAIRN_ASSIGN_OR_RETURN(uint64_t sectors, ParseU64(size_text, size_path));
      d->set_size_bytes(sectors * 512);  // sysfs counts 512-byte units
      for (auto [attr, set] :
           {std::pair{"queue/logical_block_size",
                      &v1::Disk::set_logical_sector_size},
            std::pair{"queue/physical_block_size",
                      &v1::Disk::set_physical_sector_size}}) {
        std::string ap = Join(path, attr);
        CAIRN_ASSIGN_OR_RETURN(auto t, Attr(ap));
        if (!t.has_value()) continue;
        CAIRN_ASSIGN_OR_RETURN(uint64_t v, ParseU64(*t, ap));
        if (v == 0 || v > (1u << 20) || (v & (v - 1)) != 0) {
          return absl::DataLossError(
              StrCat(ap, ": ", v, " is not a power-of-two sector size"));
        }
        (d->*set)(static_cast<uint32_t>(v));
      }
      CAIRN_ASSIGN_OR_RETURN(std::string removable,
                             AttrOrEmpty(Join(path, "removable")));
      d->set_removable(removable == "1");
      CAIRN_ASSIGN_OR_RETURN(std::string ro, AttrOrEmpty(Join(path, "ro")));
      d->set_read_only(ro == "1");

      // The device the block device belongs to (SCSI LUN, virtio device,
      // NVMe controller) and the PCI function above it.
      std::string dev_dir;
      if (auto r = root_.Resolve(Join(path, "device")); r.ok()) {
        dev_dir = *r;
      } else if (!absl::IsNotFound(r.status())) {
        return r.status();
      }
      if (!dev_dir.empty()) {
        CAIRN_ASSIGN_OR_RETURN(*d->mutable_device_driver(), DriverOf(dev_dir));
        CAIRN_ASSIGN_OR_RETURN(std::string model,
                               AttrOrEmpty(Join(dev_dir, "model")));
        d->set_model(std::string(Trim(model)));
        CAIRN_ASSIGN_OR_RETURN(std::string serial,
                               AttrOrEmpty(Join(dev_dir, "serial")));
        d->set_serial(std::string(Trim(serial)));
      }
      if (d->serial().empty()) {
        CAIRN_ASSIGN_OR_RETURN(std::string serial,
                               AttrOrEmpty(Join(path, "serial")));
        d->set_serial(std::string(Trim(serial)));
      }
      std::string pci = PciAncestor(path);
      d->set_controller_pci_address(pci);
      if (!pci.empty()) {
        CAIRN_ASSIGN_OR_RETURN(*d->mutable_controller_driver(),
                               DriverOf(PathUpTo(path, pci)));
      }
      if (d->device_driver().empty()) {
        d->set_device_driver(d->controller_driver());  // nvme: class device
      }
      d->set_bus(ClassifyBus(name, path));

      CAIRN_ASSIGN_OR_RETURN(std::string devnum,
                             AttrOrEmpty(Join(path, "dev")));
      CAIRN_ASSIGN_OR_RETURN(auto props, UdevProps(devnum));
      d->set_partition_table_type(props["ID_PART_TABLE_TYPE"]);
      d->set_partition_table_uuid(props["ID_PART_TABLE_UUID"]);
      d->set_udev_path(props["ID_PATH"]);
      if (d->model().empty()) d->set_model(props["ID_MODEL"]);
      if (d->serial().empty()) d->set_serial(props["ID_SERIAL_SHORT"]);
      CAIRN_RETURN_IF_ERROR(CollectPartitions(path, d));
    }
    return absl::OkStatus();
  }

  static v1::DiskBus ClassifyBus(std::string_view name, std::string_view path) {
    if (StartsWith(name, "nvme")) return v1::DISK_BUS_NVME;
    if (StartsWith(name, "xvd")) return v1::DISK_BUS_XEN;
    if (StartsWith(name, "mmcblk")) return v1::DISK_BUS_MMC;
    bool virtio = path.find("/virtio") != std::string_view::npos;
    if (StartsWith(name, "vd") && virtio) return v1::DISK_BUS_VIRTIO_BLK;
    if (path.find("/usb") != std::string_view::npos) return v1::DISK_BUS_USB;
    if (path.find("/ata") != std::string_view::npos) return v1::DISK_BUS_ATA;
    if (StartsWith(name, "sd") || StartsWith(name, "sr")) {
      return virtio ? v1::DISK_BUS_VIRTIO_SCSI : v1::DISK_BUS_SCSI;
    }
    return v1::DISK_BUS_OTHER;
  }

  Status CollectPartitions(const std::string& path, v1::Disk* d) {
    CAIRN_ASSIGN_OR_RETURN(auto names, root_.List(path));
    for (const std::string& name : names) {
      std::string part = Join(path, name);
      CAIRN_ASSIGN_OR_RETURN(auto num, Attr(Join(part, "partition")));
      if (!num.has_value()) continue;
      v1::Partition* pt = d->add_partitions();
      pt->set_name(name);
      CAIRN_ASSIGN_OR_RETURN(uint64_t n,
                             ParseU64(*num, Join(part, "partition")));
      pt->set_number(static_cast<uint32_t>(n));
      std::string sp = Join(part, "start");
      CAIRN_ASSIGN_OR_RETURN(std::string start, root_.ReadFile(sp));
      CAIRN_ASSIGN_OR_RETURN(uint64_t s, ParseU64(start, sp));
      pt->set_start_bytes(s * 512);
      std::string zp = Join(part, "size");
      CAIRN_ASSIGN_OR_RETURN(std::string size, root_.ReadFile(zp));
      CAIRN_ASSIGN_OR_RETURN(uint64_t z, ParseU64(size, zp));
      pt->set_size_bytes(z * 512);
      CAIRN_ASSIGN_OR_RETURN(std::string devnum,
                             AttrOrEmpty(Join(part, "dev")));
      CAIRN_ASSIGN_OR_RETURN(auto props, UdevProps(devnum));
      pt->set_fs_type(props["ID_FS_TYPE"]);
      pt->set_fs_uuid(props["ID_FS_UUID"]);
      pt->set_fs_label(props["ID_FS_LABEL"]);
      pt->set_part_uuid(props["ID_PART_ENTRY_UUID"]);
      pt->set_part_type(props["ID_PART_ENTRY_TYPE"]);
    }
    std::sort(
        d->mutable_partitions()->begin(), d->mutable_partitions()->end(),
        [](const auto& a, const auto& b) { return a.number() < b.number(); });
    return absl::OkStatus();
  }

  Status CollectNics() {
    CAIRN_ASSIGN_OR_RETURN(auto kind, root_.KindOf("/sys/class/net"));
    if (kind != RootDir::Kind::kDirectory) {
      Warn("/sys/class/net is missing: no NICs recorded");
      return absl::OkStatus();
    }
    CAIRN_ASSIGN_OR_RETURN(auto names, root_.List("/sys/class/net"));
    for (const std::string& name : names) {
      CAIRN_ASSIGN_OR_RETURN(std::string path,
                             root_.Resolve(StrCat("/sys/class/net/", name),
                                           RootDir::Missing::kAllowMissing));
      if (StartsWith(path, "/sys/devices/virtual/")) continue;
      v1::NetworkInterface* n = p_->add_nics();
      n->set_name(name);
      n->set_sysfs_path(path);
      CAIRN_ASSIGN_OR_RETURN(std::string mac,
                             AttrOrEmpty(Join(path, "address")));
      std::transform(mac.begin(), mac.end(), mac.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      n->set_mac(mac);
      CAIRN_ASSIGN_OR_RETURN(*n->mutable_operstate(),
                             AttrOrEmpty(Join(path, "operstate")));
      CAIRN_ASSIGN_OR_RETURN(std::string carrier,
                             AttrOrEmpty(Join(path, "carrier")));
      n->set_carrier(carrier == "1");
      CAIRN_ASSIGN_OR_RETURN(auto speed, Attr(Join(path, "speed")));
      if (speed.has_value()) {
        int64_t s = 0;
        auto r =
            std::from_chars(speed->data(), speed->data() + speed->size(), s);
        if (r.ec != std::errc()) {
          return absl::DataLossError(
              StrCat(Join(path, "speed"), ": not a number: '", *speed, "'"));
        }
        n->set_speed_mbps(s);
      }
      CAIRN_ASSIGN_OR_RETURN(auto mtu, Attr(Join(path, "mtu")));
      if (mtu.has_value()) {
        CAIRN_ASSIGN_OR_RETURN(uint64_t m, ParseU64(*mtu, Join(path, "mtu")));
        n->set_mtu(static_cast<uint32_t>(m));
      }
      if (auto dev = root_.Resolve(Join(path, "device")); dev.ok()) {
        CAIRN_ASSIGN_OR_RETURN(*n->mutable_driver(), DriverOf(*dev));
      } else if (!absl::IsNotFound(dev.status())) {
        return dev.status();
      }
      n->set_pci_address(PciAncestor(path));
    }
    std::stable_sort(p_->mutable_nics()->begin(), p_->mutable_nics()->end(),
                     [](const auto& a, const auto& b) {
                       return a.pci_address() < b.pci_address();
                     });
    return absl::OkStatus();
  }

  Status CollectKernels() {
    if (options_.read_machine_state) {
      CAIRN_ASSIGN_OR_RETURN(auto running, Attr("/proc/sys/kernel/osrelease"));
      p_->set_running_kernel(running.value_or(""));
      CAIRN_ASSIGN_OR_RETURN(auto cmdline, Attr("/proc/cmdline"));
      p_->set_kernel_cmdline(cmdline.value_or(""));
    }

    std::set<std::string> versions;
    CAIRN_ASSIGN_OR_RETURN(auto boot_kind, root_.KindOf("/boot"));
    if (boot_kind == RootDir::Kind::kDirectory) {
      CAIRN_ASSIGN_OR_RETURN(auto names, root_.List("/boot"));
      for (const auto& n : names) {
        if (StartsWith(n, "vmlinuz-")) versions.insert(n.substr(8));
      }
    }
    CAIRN_ASSIGN_OR_RETURN(auto mod_kind, root_.KindOf("/lib/modules"));
    if (mod_kind == RootDir::Kind::kDirectory) {
      CAIRN_ASSIGN_OR_RETURN(auto names, root_.List("/lib/modules"));
      for (const auto& n : names) {
        CAIRN_ASSIGN_OR_RETURN(auto k,
                               root_.KindOf(StrCat("/lib/modules/", n)));
        if (k == RootDir::Kind::kDirectory) versions.insert(n);
      }
    }
    for (const std::string& v : versions) {
      v1::InstalledKernel* k = p_->add_kernels();
      k->set_version(v);
      k->set_running(v == p_->running_kernel());
      std::string image = StrCat("/boot/vmlinuz-", v);
      CAIRN_ASSIGN_OR_RETURN(auto ik, root_.KindOf(image));
      if (ik == RootDir::Kind::kRegular) k->set_image_path(image);
      std::string dir = StrCat("/lib/modules/", v);
      k->set_module_dir(dir);
      CAIRN_RETURN_IF_ERROR(CollectModuleIndex(dir, k));
      if (options_.read_initramfs) {
        std::string initrd = StrCat("/boot/initrd.img-", v);
        CAIRN_ASSIGN_OR_RETURN(auto kind, root_.KindOf(initrd));
        if (kind == RootDir::Kind::kRegular) {
          CAIRN_ASSIGN_OR_RETURN(std::string resolved, root_.Resolve(initrd));
          CAIRN_ASSIGN_OR_RETURN(
              InitramfsListing listing,
              ReadInitramfs(root_.HostPath(resolved), initrd));
          v1::InitramfsContents* ic = k->mutable_initramfs();
          ic->set_path(initrd);
          ic->set_size_bytes(listing.size_bytes);
          for (auto& s : listing.segments) ic->add_segments(s);
          for (auto& m : listing.modules) ic->add_modules(m);
          for (auto& m : listing.module_paths) ic->add_module_paths(m);
        } else if (kind != RootDir::Kind::kMissing) {
          return absl::InvalidArgumentError(
              StrCat(initrd, " is not a regular file"));
        } else if (!k->image_path().empty()) {
          Warn(StrCat("kernel ", v, " has no ", initrd));
        }
      }
    }
    if (versions.empty()) Warn("no kernels found in /boot or /lib/modules");

    if (!options_.read_machine_state) return absl::OkStatus();
    CAIRN_ASSIGN_OR_RETURN(auto modules,
                           root_.ReadOptional("/proc/modules", 4u << 20));
    if (modules.has_value()) {
      for (std::string_view line : Lines(*modules)) {
        if (Trim(line).empty()) continue;
        std::vector<std::string_view> w;
        size_t i = 0;
        while (i < line.size() && w.size() < 4) {
          size_t j = line.find(' ', i);
          if (j == std::string_view::npos) j = line.size();
          w.push_back(line.substr(i, j - i));
          i = j + 1;
        }
        if (w.size() < 4) {
          return absl::DataLossError(StrCat("/proc/modules: malformed line '",
                                            line.substr(0, 60), "'"));
        }
        v1::LoadedModule* m = p_->add_loaded_modules();
        m->set_name(std::string(w[0]));
        CAIRN_ASSIGN_OR_RETURN(uint64_t size,
                               ParseU64(w[1], "/proc/modules size"));
        m->set_size_bytes(size);
        if (w[3] != "-") {
          size_t a = 0;
          while (a < w[3].size()) {
            size_t b = w[3].find(',', a);
            if (b == std::string_view::npos) b = w[3].size();
            if (b > a) m->add_used_by(std::string(w[3].substr(a, b - a)));
            a = b + 1;
          }
        }
      }
    }
    return absl::OkStatus();
  }

  Status CollectModuleIndex(const std::string& dir, v1::InstalledKernel* k) {
    CAIRN_ASSIGN_OR_RETURN(
        auto dep, root_.ReadOptional(Join(dir, "modules.dep"), kMaxIndexFile));
    CAIRN_ASSIGN_OR_RETURN(
        auto alias,
        root_.ReadOptional(Join(dir, "modules.alias"), kMaxIndexFile));
    CAIRN_ASSIGN_OR_RETURN(
        auto builtin,
        root_.ReadOptional(Join(dir, "modules.builtin"), kMaxIndexFile));
    CAIRN_ASSIGN_OR_RETURN(
        auto modinfo, root_.ReadOptional(Join(dir, "modules.builtin.modinfo"),
                                         kMaxIndexFile));
    CAIRN_ASSIGN_OR_RETURN(
        auto softdep,
        root_.ReadOptional(Join(dir, "modules.softdep"), kMaxIndexFile));
    k->set_module_tree_present(dep.has_value() && alias.has_value());
    if (!k->module_tree_present()) {
      Warn(StrCat(dir,
                  ": no modules.dep/modules.alias; this kernel's drivers "
                  "cannot be matched"));
      return absl::OkStatus();
    }
    auto count_lines = [](const std::optional<std::string>& t) {
      uint32_t n = 0;
      if (!t.has_value()) return n;
      for (std::string_view l : Lines(*t))
        if (!Trim(l).empty()) ++n;
      return n;
    };
    k->set_loadable_module_count(count_lines(dep));
    k->set_builtin_module_count(count_lines(builtin));
    v1::ModuleIndexFiles files;
    files.set_modules_dep(*dep);
    files.set_modules_alias(*alias);
    files.set_modules_builtin(builtin.value_or(""));
    files.set_modules_builtin_modinfo(modinfo.value_or(""));
    files.set_modules_softdep(softdep.value_or(""));
    // Validate now, so a garbage index fails collection naming the tree.
    if (auto idx = ModuleIndexFromFiles(files); !idx.ok()) {
      return Status(idx.status().code(),
                    StrCat(dir, ": ", ToStd(idx.status().message())));
    }
    if (options_.record_module_indices)
      *k->mutable_module_index() = std::move(files);
    return absl::OkStatus();
  }

  Status CollectPackages() {
    CAIRN_ASSIGN_OR_RETURN(
        auto status,
        root_.ReadOptional("/var/lib/dpkg/status", kMaxDpkgStatus));
    if (!status.has_value()) {
      Warn(
          "no /var/lib/dpkg/status: hypervisor software and the boot loader "
          "package were not detected (only dpkg databases are read)");
      return absl::OkStatus();
    }
    CAIRN_ASSIGN_OR_RETURN(
        packages_, profile::ParseDpkgStatus(*status, "/var/lib/dpkg/status"));
    struct Known {
      const char* prefix;  // package name or prefix ending in '*'
      v1::HypervisorSoftwareKind kind;
      const char* platform;
      std::vector<const char*> units;
    };
    static const Known kKnown[] = {
        {"qemu-guest-agent",
         v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS,
         "kvm",
         {"qemu-guest-agent.service"}},
        {"spice-vdagent",
         v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS,
         "kvm",
         {"spice-vdagentd.service"}},
        {"open-vm-tools",
         v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS,
         "vmware",
         {"open-vm-tools.service", "vgauth.service"}},
        {"open-vm-tools-desktop",
         v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS,
         "vmware",
         {}},
        {"virtualbox-guest-utils",
         v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS,
         "virtualbox",
         {"virtualbox-guest-utils.service"}},
        {"virtualbox-guest-x11",
         v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS,
         "virtualbox",
         {}},
        {"xe-guest-utilities",
         v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS,
         "xen",
         {"xe-linux-distribution.service"}},
        {"hyperv-daemons",
         v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS,
         "hyperv",
         {"hv-kvp-daemon.service", "hv-vss-daemon.service",
          "hv-fcopy-daemon.service"}},
        {"walinuxagent",
         v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS,
         "hyperv",
         {"walinuxagent.service"}},
        {"qemu-system-x86", v1::HYPERVISOR_SOFTWARE_KIND_MANAGER, "kvm", {}},
        {"qemu-kvm", v1::HYPERVISOR_SOFTWARE_KIND_MANAGER, "kvm", {}},
        {"libvirt-daemon-system",
         v1::HYPERVISOR_SOFTWARE_KIND_MANAGER,
         "kvm",
         {"libvirtd.service"}},
        {"libvirt-daemon", v1::HYPERVISOR_SOFTWARE_KIND_MANAGER, "kvm", {}},
        {"virtualbox*",
         v1::HYPERVISOR_SOFTWARE_KIND_MANAGER,
         "virtualbox",
         {"virtualbox.service"}},
        {"xen-hypervisor-*", v1::HYPERVISOR_SOFTWARE_KIND_MANAGER, "xen", {}},
        {"xen-utils-*",
         v1::HYPERVISOR_SOFTWARE_KIND_MANAGER,
         "xen",
         {"xen.service", "xendomains.service"}},
    };
    CAIRN_ASSIGN_OR_RETURN(std::set<std::string> enabled, EnabledUnits());
    std::set<std::string> done;
    for (const auto& [pkg, version] : packages_) {
      for (const Known& k : kKnown) {
        std::string_view pre = k.prefix;
        bool match = pre.back() == '*'
                         ? StartsWith(pkg, pre.substr(0, pre.size() - 1)) &&
                               !StartsWith(pkg, "virtualbox-guest")
                         : pkg == pre;
        if (!match || done.count(pkg)) continue;
        done.insert(pkg);
        v1::HypervisorSoftware* h = p_->add_hypervisor_software();
        h->set_package(pkg);
        h->set_version(version);
        h->set_kind(k.kind);
        h->set_platform(k.platform);
        for (const char* u : k.units) {
          if (enabled.count(u)) h->add_enabled_units(u);
        }
      }
    }
    return absl::OkStatus();
  }

  // Units enabled in /etc/systemd/system/*.wants (symlink names).
  StatusOr<std::set<std::string>> EnabledUnits() {
    std::set<std::string> out;
    CAIRN_ASSIGN_OR_RETURN(auto kind, root_.KindOf("/etc/systemd/system"));
    if (kind != RootDir::Kind::kDirectory) return out;
    CAIRN_ASSIGN_OR_RETURN(auto dirs, root_.List("/etc/systemd/system"));
    for (const auto& d : dirs) {
      if (d.size() < 6 || d.substr(d.size() - 6) != ".wants") continue;
      std::string path = StrCat("/etc/systemd/system/", d);
      CAIRN_ASSIGN_OR_RETURN(auto k, root_.KindOf(path));
      if (k != RootDir::Kind::kDirectory) continue;
      CAIRN_ASSIGN_OR_RETURN(auto units, root_.List(path));
      out.insert(units.begin(), units.end());
    }
    return out;
  }

  // Files in `dir` whose names end in `suffix` ("" for all), sorted.
  StatusOr<std::vector<std::string>> FilesIn(std::string_view dir,
                                             std::string_view suffix) {
    std::vector<std::string> out;
    CAIRN_ASSIGN_OR_RETURN(auto kind, root_.KindOf(dir));
    if (kind != RootDir::Kind::kDirectory) return out;
    CAIRN_ASSIGN_OR_RETURN(auto names, root_.List(dir));
    for (const auto& n : names) {
      if (n.size() < suffix.size() ||
          n.substr(n.size() - suffix.size()) != suffix)
        continue;
      std::string path = Join(dir, n);
      CAIRN_ASSIGN_OR_RETURN(auto k, root_.KindOf(path));
      if (k == RootDir::Kind::kRegular) out.push_back(path);
    }
    return out;
  }

  Status CollectNetworkConfig() {
    std::vector<v1::InterfaceConfig> cfg;
    // ifupdown, following source/source-directory (bounded).
    std::vector<std::string> queue = {"/etc/network/interfaces"};
    std::set<std::string> seen;
    while (!queue.empty() && seen.size() < 256) {
      std::string path = queue.front();
      queue.erase(queue.begin());
      if (!seen.insert(path).second) continue;
      std::vector<std::string> files;
      if (path.size() > 2 && path.substr(path.size() - 2) == "/*") {
        CAIRN_ASSIGN_OR_RETURN(files,
                               FilesIn(path.substr(0, path.size() - 2), ""));
      } else if (path.back() == '*') {
        // "/etc/network/interfaces.d/*.cfg"-style patterns: directory part
        // plus suffix after the '*'.
        size_t star = path.rfind('*');
        std::string dir(Dirname(path.substr(0, star)));
        std::string prefix(Basename(path.substr(0, star)));
        CAIRN_ASSIGN_OR_RETURN(auto all, FilesIn(dir, ""));
        for (auto& f : all)
          if (StartsWith(Basename(f), prefix)) files.push_back(f);
      } else {
        files.push_back(path);
      }
      for (const auto& f : files) {
        CAIRN_ASSIGN_OR_RETURN(auto text, root_.ReadOptional(f));
        if (!text.has_value()) continue;
        std::vector<std::string> includes;
        CAIRN_RETURN_IF_ERROR(
            profile::ParseIfupdown(*text, f, &cfg, &includes));
        for (auto& inc : includes) queue.push_back(inc);
      }
    }
    CAIRN_ASSIGN_OR_RETURN(auto netplan, FilesIn("/etc/netplan", ".yaml"));
    for (const auto& f : netplan) {
      CAIRN_ASSIGN_OR_RETURN(std::string text, root_.ReadFile(f));
      CAIRN_RETURN_IF_ERROR(profile::ParseNetplan(text, f, &cfg));
    }
    CAIRN_ASSIGN_OR_RETURN(
        auto nm, FilesIn("/etc/NetworkManager/system-connections", ""));
    for (const auto& f : nm) {
      CAIRN_ASSIGN_OR_RETURN(std::string text, root_.ReadFile(f));
      CAIRN_RETURN_IF_ERROR(profile::ParseNetworkManagerKeyfile(text, f, &cfg));
    }
    CAIRN_ASSIGN_OR_RETURN(auto networkd,
                           FilesIn("/etc/systemd/network", ".network"));
    for (const auto& f : networkd) {
      CAIRN_ASSIGN_OR_RETURN(std::string text, root_.ReadFile(f));
      CAIRN_RETURN_IF_ERROR(profile::ParseSystemdNetwork(text, f, &cfg));
    }
    for (auto& c : cfg) *p_->mutable_network()->add_interfaces() = std::move(c);
    auto resolv = root_.ReadOptional("/etc/resolv.conf");
    if (resolv.ok() && resolv->has_value()) {
      profile::ParseResolvConf(**resolv, p_->mutable_network());
    } else if (!resolv.ok() && !absl::IsNotFound(resolv.status())) {
      // A dangling link to /run/systemd/resolve/... is normal offline.
      Warn(StrCat("/etc/resolv.conf: ", ToStd(resolv.status().message())));
    }
    return absl::OkStatus();
  }

  Status CollectBootLoader() {
    v1::BootLoader* bl = p_->mutable_boot_loader();
    if (packages_.count("grub-efi-amd64") ||
        packages_.count("grub-efi-amd64-signed")) {
      bl->set_name("grub-efi");
    } else if (packages_.count("grub-pc")) {
      bl->set_name("grub-pc");
    } else if (packages_.count("systemd-boot")) {
      bl->set_name("systemd-boot");
    }
    for (const char* f : {"/boot/grub/grub.cfg", "/etc/default/grub",
                          "/boot/grub/device.map"}) {
      CAIRN_ASSIGN_OR_RETURN(auto text, root_.ReadOptional(f, 4u << 20));
      if (!text.has_value()) continue;
      if (std::string_view(f) == "/boot/grub/grub.cfg") bl->set_config_path(f);
      for (auto& r : profile::GrubDeviceReferences(*text, f)) {
        bl->add_device_references(r);
      }
      if (std::string_view(f) == "/etc/default/grub") {
        CAIRN_ASSIGN_OR_RETURN(auto kv,
                               profile::ParseShellAssignments(*text, f));
        std::string cmd = kv["GRUB_CMDLINE_LINUX"];
        if (!kv["GRUB_CMDLINE_LINUX_DEFAULT"].empty()) {
          if (!cmd.empty()) cmd += " ";
          cmd += kv["GRUB_CMDLINE_LINUX_DEFAULT"];
        }
        bl->set_default_cmdline(cmd);
      }
    }
    CAIRN_ASSIGN_OR_RETURN(auto efi_kind, root_.KindOf("/boot/efi/EFI"));
    if (efi_kind == RootDir::Kind::kDirectory) {
      CAIRN_ASSIGN_OR_RETURN(auto dirs, root_.List("/boot/efi/EFI"));
      for (const auto& d : dirs) {
        CAIRN_ASSIGN_OR_RETURN(auto files,
                               FilesIn(StrCat("/boot/efi/EFI/", d), ".efi"));
        CAIRN_ASSIGN_OR_RETURN(auto upper,
                               FilesIn(StrCat("/boot/efi/EFI/", d), ".EFI"));
        for (auto& f : files) bl->add_efi_binaries(f);
        for (auto& f : upper) bl->add_efi_binaries(f);
      }
    }
    return absl::OkStatus();
  }

  Status CollectFstabCrypttab() {
    CAIRN_ASSIGN_OR_RETURN(auto fstab, root_.ReadOptional("/etc/fstab"));
    if (fstab.has_value()) {
      CAIRN_ASSIGN_OR_RETURN(auto entries, ParseFstab(*fstab, "/etc/fstab"));
      for (auto& e : entries) *p_->add_fstab() = std::move(e);
    } else {
      Warn("no /etc/fstab");
    }
    CAIRN_ASSIGN_OR_RETURN(auto crypttab, root_.ReadOptional("/etc/crypttab"));
    if (crypttab.has_value()) {
      CAIRN_ASSIGN_OR_RETURN(auto entries,
                             ParseCrypttab(*crypttab, "/etc/crypttab"));
      for (auto& e : entries) *p_->add_crypttab() = std::move(e);
    }
    return absl::OkStatus();
  }

  const RootDir& root_;
  const CollectOptions& options_;
  v1::HardwareProfile* p_;
  std::map<std::string, std::string> packages_;
};

}  // namespace

StatusOr<v1::HardwareProfile> CollectHardwareProfile(
    const CollectOptions& options) {
  CAIRN_ASSIGN_OR_RETURN(RootDir root, RootDir::Open(options.root));
  v1::HardwareProfile p;
  p.set_format_version(1);
  int64_t now = options.collected_unix_us;
  if (now == 0) {
    now = std::chrono::duration_cast<std::chrono::microseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count();
  }
  p.set_collected_unix_us(now);
  p.set_collected_from(options.collected_from.empty()
                           ? StrCat("live:", options.root)
                           : options.collected_from);
  Collector c(root, options, &p);
  CAIRN_RETURN_IF_ERROR(c.Run());
  return p;
}

}  // namespace cairn
