#include "common/hardware_profile.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/compression.h"
#include "common/crc32c.h"
#include "common/env.h"
#include "common/strings.h"

namespace cairn {
namespace {

constexpr char kMagic[8] = {'C', 'A', 'I', 'R', 'N', 'H', 'P', '1'};
constexpr size_t kHeaderBytes = 8 + 8 + 4;
constexpr size_t kMaxProfileFile = 256u << 20;

void PutLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out->push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t GetLe(std::string_view in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  }
  return v;
}

Status CheckVersion(const v1::HardwareProfile& p, std::string_view name) {
  if (p.format_version() == 0) {
    return absl::InvalidArgumentError(
        StrCat(name, ": not a hardware profile (format_version missing)"));
  }
  if (p.format_version() > kHardwareProfileFormatVersion) {
    return absl::InvalidArgumentError(
        StrCat(name, ": hardware profile format_version ", p.format_version(),
               " is newer than this Cairn supports (",
               kHardwareProfileFormatVersion, ")"));
  }
  return absl::OkStatus();
}

std::string Hex4(uint32_t v) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04x", v & 0xffff);
  return buf;
}

std::string HumanBytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%llu B",
                  static_cast<unsigned long long>(b));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", v, units[u]);
  }
  return buf;
}

}  // namespace

std::string_view FirmwareModeName(v1::FirmwareMode mode) {
  switch (mode) {
    case v1::FIRMWARE_MODE_BIOS:
      return "bios";
    case v1::FIRMWARE_MODE_UEFI:
      return "uefi";
    default:
      return "unknown";
  }
}

std::string_view SecureBootName(v1::SecureBootState s) {
  switch (s) {
    case v1::SECURE_BOOT_DISABLED:
      return "disabled";
    case v1::SECURE_BOOT_ENABLED:
      return "enabled";
    case v1::SECURE_BOOT_NOT_APPLICABLE:
      return "n/a";
    default:
      return "unknown";
  }
}

std::string_view DiskBusName(v1::DiskBus bus) {
  switch (bus) {
    case v1::DISK_BUS_ATA:
      return "ata";
    case v1::DISK_BUS_VIRTIO_BLK:
      return "virtio-blk";
    case v1::DISK_BUS_VIRTIO_SCSI:
      return "virtio-scsi";
    case v1::DISK_BUS_SCSI:
      return "scsi";
    case v1::DISK_BUS_NVME:
      return "nvme";
    case v1::DISK_BUS_USB:
      return "usb";
    case v1::DISK_BUS_XEN:
      return "xen";
    case v1::DISK_BUS_MMC:
      return "mmc";
    case v1::DISK_BUS_OTHER:
      return "other";
    default:
      return "unknown";
  }
}

std::string EncodeHardwareProfileFile(const v1::HardwareProfile& profile) {
  std::string payload;
  profile.SerializeToString(&payload);
  std::string out(kMagic, sizeof(kMagic));
  PutLe(&out, payload.size(), 8);
  PutLe(&out, crc32c::Value(payload), 4);
  out += payload;
  return out;
}

StatusOr<v1::HardwareProfile> ParseHardwareProfile(std::string_view bytes,
                                                   std::string_view name) {
  v1::HardwareProfile p;
  size_t first = bytes.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && bytes[first] == '{') {
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = false;
    auto s = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(bytes.data(), bytes.size()), &p, opts);
    if (!s.ok()) {
      return absl::InvalidArgumentError(StrCat(
          name, ": not a valid hardware profile in JSON: ", s.ToString()));
    }
    CAIRN_RETURN_IF_ERROR(CheckVersion(p, name));
    return p;
  }
  if (bytes.size() < sizeof(kMagic) ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError(StrCat(
        name, ": not a Cairn hardware profile (no CAIRNHP1 header, not JSON)"));
  }
  if (bytes.size() < kHeaderBytes) {
    return absl::DataLossError(
        StrCat(name, ": truncated hardware profile (", bytes.size(),
               " bytes, the header alone is ", kHeaderBytes, ")"));
  }
  uint64_t len = GetLe(bytes.substr(8), 8);
  uint32_t crc = static_cast<uint32_t>(GetLe(bytes.substr(16), 4));
  std::string_view payload = bytes.substr(kHeaderBytes);
  if (payload.size() < len) {
    return absl::DataLossError(StrCat(name, ": truncated hardware profile (",
                                      payload.size(), " of ", len,
                                      " payload bytes)"));
  }
  if (payload.size() > len) {
    return absl::DataLossError(StrCat(name, ": ", payload.size() - len,
                                      " unexpected bytes after the profile"));
  }
  if (crc32c::Value(payload) != crc) {
    return absl::DataLossError(
        StrCat(name, ": hardware profile is damaged (CRC32C mismatch)"));
  }
  if (!p.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::DataLossError(
        StrCat(name, ": hardware profile payload does not parse"));
  }
  CAIRN_RETURN_IF_ERROR(CheckVersion(p, name));
  return p;
}

StatusOr<v1::HardwareProfile> ReadHardwareProfileFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoToStatus(errno, "open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(StrCat(path, " is not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxProfileFile) {
    ::close(fd);
    return absl::ResourceExhaustedError(
        StrCat(path, " is larger than ", kMaxProfileFile, " bytes"));
  }
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoToStatus(err, "read", path);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  data.resize(got);
  return ParseHardwareProfile(data, path);
}

Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  // common/env.h's writer: temporary file, fsync, rename, directory sync.
  return WriteFileAtomically(Env::Default(), contents,
                             StrCat(path, ".tmp.", ::getpid()), path);
}

StatusOr<std::string> HardwareProfileToJson(const v1::HardwareProfile& profile,
                                            bool include_module_indices) {
  v1::HardwareProfile copy = profile;
  std::vector<uint64_t> index_bytes;
  if (!include_module_indices) {
    for (auto& k : *copy.mutable_kernels()) {
      index_bytes.push_back(k.module_index().ByteSizeLong());
      k.clear_module_index();
    }
  }
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = false;
  opts.preserve_proto_field_names = true;
  std::string out;
  auto s = google::protobuf::util::MessageToJsonString(copy, &out, opts);
  if (!s.ok()) {
    return absl::InternalError(StrCat("profile to JSON: ", s.ToString()));
  }
  try {
    nlohmann::json j = nlohmann::json::parse(out);
    if (!include_module_indices && j.contains("kernels")) {
      for (size_t i = 0; i < j["kernels"].size() && i < index_bytes.size();
           ++i) {
        j["kernels"][i]["module_index_bytes"] = index_bytes[i];
      }
    }
    return j.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(StrCat("profile JSON: ", e.what()));
  }
}

std::string RenderHardwareProfileText(const v1::HardwareProfile& p) {
  std::string o;
  auto line = [&](auto&&... parts) {
    o += StrCat(parts...);
    o += "\n";
  };
  line("Hardware profile (format ", p.format_version(), ", from ",
       p.collected_from(), ")");
  line("OS:        ",
       p.os().pretty_name().empty() ? "unknown" : p.os().pretty_name(),
       p.network().hostname().empty()
           ? ""
           : StrCat(", hostname ", p.network().hostname()));
  line("Firmware:  ", FirmwareModeName(p.firmware().mode()), ", Secure Boot ",
       SecureBootName(p.firmware().secure_boot()),
       p.firmware().bios_vendor().empty()
           ? ""
           : StrCat(" (", p.firmware().bios_vendor(), " ",
                    p.firmware().bios_version(), ")"));
  line("Platform:  ", p.platform().system_vendor(), " ",
       p.platform().product_name(),
       p.platform().virtual_machine()
           ? StrCat(" [virtual machine",
                    p.platform().hypervisor().empty()
                        ? ""
                        : StrCat(": ", p.platform().hypervisor()),
                    "]")
           : "");
  std::string flags;
  for (const auto& f : p.cpu().flags())
    flags += StrCat(flags.empty() ? "" : " ", f);
  if (p.cpu().logical_cpus() == 0 && p.memory().total_bytes() == 0) {
    // An offline profile (a disk image) knows no CPU, memory or devices.
    line("CPU:       unknown (", p.collected_from(), ")");
    line("Memory:    unknown");
  } else {
    line("CPU:       ", p.cpu().model_name(), " (", p.cpu().vendor(), ", ",
         p.cpu().logical_cpus(), " logical CPUs)");
    line("CPU flags: ", flags);
    line("Memory:    ", HumanBytes(p.memory().total_bytes()));
  }
  line("");
  line("Disks:");
  for (const auto& d : p.disks()) {
    line("  ", d.name(), "  ", HumanBytes(d.size_bytes()), " (", d.size_bytes(),
         " bytes), sectors ", d.logical_sector_size(), "/",
         d.physical_sector_size(), ", ", DiskBusName(d.bus()), ", model '",
         d.model(), "'");
    line(
        "      controller ",
        d.controller_pci_address().empty() ? "-" : d.controller_pci_address(),
        " driver ", d.controller_driver().empty() ? "-" : d.controller_driver(),
        ", device driver ", d.device_driver().empty() ? "-" : d.device_driver(),
        ", partition table ",
        d.partition_table_type().empty() ? "none/unknown"
                                         : d.partition_table_type());
    for (const auto& pt : d.partitions()) {
      line("      ", pt.name(), "  start ", pt.start_bytes(), " size ",
           HumanBytes(pt.size_bytes()),
           pt.fs_type().empty() ? "" : StrCat(" ", pt.fs_type()),
           pt.fs_uuid().empty() ? "" : StrCat(" UUID=", pt.fs_uuid()),
           pt.fs_label().empty() ? "" : StrCat(" LABEL=", pt.fs_label()));
    }
  }
  line("");
  line("NICs:");
  for (const auto& n : p.nics()) {
    line("  ", n.name(), "  ", n.mac(), "  driver ",
         n.driver().empty() ? "-" : n.driver(), "  pci ",
         n.pci_address().empty() ? "-" : n.pci_address(), "  ", n.operstate(),
         n.carrier() ? " (carrier)" : "");
  }
  line("");
  line("PCI devices:");
  for (const auto& d : p.pci_devices()) {
    line("  ", d.address(), "  [", Hex4(d.vendor_id()), ":",
         Hex4(d.device_id()), "] class ", Hex4(d.class_code() >> 8),
         "  driver ", d.driver().empty() ? "-" : d.driver());
    for (const auto& c : d.children()) {
      line("      ", c.bus().empty() ? "?" : c.bus(), " ", c.name(),
           "  driver ", c.driver().empty() ? "-" : c.driver(),
           c.modalias().empty() ? "" : StrCat("  ", c.modalias()));
    }
  }
  line("");
  line("Kernel:    running ",
       p.running_kernel().empty() ? "unknown" : p.running_kernel());
  for (const auto& k : p.kernels()) {
    line("  ", k.version(), k.running() ? " (running)" : "", ": module tree ",
         k.module_tree_present()
             ? StrCat(k.loadable_module_count(), " loadable, ",
                      k.builtin_module_count(), " built in")
             : "missing",
         k.has_initramfs()
             ? StrCat("; initramfs ", k.initramfs().modules_size(), " modules")
             : "; no initramfs");
    if (k.has_initramfs()) {
      std::string mods;
      for (const auto& m : k.initramfs().modules())
        mods += StrCat(mods.empty() ? "" : " ", m);
      line("      initramfs modules: ", mods);
    }
  }
  line("");
  line("Hypervisor software:");
  if (p.hypervisor_software().empty()) line("  none");
  for (const auto& h : p.hypervisor_software()) {
    std::string units;
    for (const auto& u : h.enabled_units()) units += StrCat(" ", u);
    line("  ", h.package(), " ", h.version(), " (",
         h.kind() == v1::HYPERVISOR_SOFTWARE_KIND_MANAGER ? "manager"
                                                          : "guest tools",
         " for ", h.platform(), ")",
         units.empty() ? "" : StrCat(", enabled:", units));
  }
  line("");
  line("Network configuration:");
  for (const auto& c : p.network().interfaces()) {
    std::string addrs;
    for (const auto& a : c.addresses()) addrs += StrCat(" ", a);
    line("  ", c.system(), " ", c.file(), ": ",
         c.name().empty() ? StrCat("MAC ", c.match_mac()) : c.name(), " ",
         c.method(), addrs,
         c.gateway().empty() ? "" : StrCat(" gw ", c.gateway()));
  }
  line("");
  line("Boot loader: ",
       p.boot_loader().name().empty() ? "unknown" : p.boot_loader().name(),
       p.boot_loader().config_path().empty()
           ? ""
           : StrCat(" (", p.boot_loader().config_path(), ")"));
  for (const auto& r : p.boot_loader().device_references()) line("  ", r);
  for (const auto& e : p.boot_loader().efi_binaries()) line("  EFI: ", e);
  line("");
  line("fstab:");
  for (const auto& e : p.fstab()) {
    line("  ", e.spec(), "  ", e.mount_point(), "  ", e.fs_type(), "  ",
         e.options());
  }
  if (!p.crypttab().empty()) {
    line("crypttab:");
    for (const auto& e : p.crypttab()) line("  ", e.name(), "  ", e.device());
  }
  if (!p.warnings().empty()) {
    line("");
    line("Warnings:");
    for (const auto& w : p.warnings()) line("  ", w);
  }
  return o;
}

StatusOr<std::string> CompressHardwareProfile(
    const v1::HardwareProfile& profile, uint64_t* raw_size) {
  std::string raw = profile.SerializeAsString();
  *raw_size = raw.size();
  std::string out;
  CAIRN_RETURN_IF_ERROR(ZstdCompress(raw, 3, &out));
  return out;
}

StatusOr<v1::HardwareProfile> DecompressHardwareProfile(
    std::string_view profile_zstd, uint64_t raw_size, std::string_view what,
    std::string* serialized) {
  if (raw_size == 0 || raw_size > kMaxSerializedProfileBytes) {
    return absl::InvalidArgumentError(
        StrCat(what, ": a profile is 1..", kMaxSerializedProfileBytes,
               " bytes serialized, not ", raw_size));
  }
  std::string raw;
  Status s = ZstdDecompress(profile_zstd, raw_size, &raw);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        StrCat(what, ": does not decompress: ", ToStd(s.message())));
  }
  v1::HardwareProfile profile;
  if (!profile.ParseFromString(raw)) {
    return absl::InvalidArgumentError(
        StrCat(what, ": is not a serialized HardwareProfile"));
  }
  if (serialized != nullptr) *serialized = std::move(raw);
  return profile;
}

}  // namespace cairn
