// The live collector on the recorded machine shapes (tests/data/profiles,
// captured from real Debian 12 boots under QEMU by
// tests/fixtures/capture-profile-tree.sh) and on hostile trees.
#include "agent/profile_collector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/hardware_profile.h"
#include "profile_test_util.h"

namespace cairn {
namespace {

using profile_test::ScratchDir;
using profile_test::Shape;
using ::testing::Contains;
using ::testing::HasSubstr;

const v1::PciDevice* Pci(const v1::HardwareProfile& p,
                         const std::string& addr) {
  for (const auto& d : p.pci_devices()) {
    if (d.address() == addr) return &d;
  }
  return nullptr;
}

const v1::BusDevice* Child(const v1::PciDevice& d, const std::string& driver) {
  for (const auto& c : d.children()) {
    if (c.driver() == driver) return &c;
  }
  return nullptr;
}

TEST(ProfileCollector, BiosAhciE1000) {
  const v1::HardwareProfile& p = Shape("bios-ahci-e1000");
  EXPECT_EQ(p.firmware().mode(), v1::FIRMWARE_MODE_BIOS);
  EXPECT_EQ(p.firmware().secure_boot(), v1::SECURE_BOOT_NOT_APPLICABLE);
  EXPECT_EQ(p.os().id(), "debian");
  EXPECT_EQ(p.os().version_id(), "12");
  EXPECT_EQ(p.platform().system_vendor(), "QEMU");
  EXPECT_EQ(p.platform().hypervisor(), "kvm");
  EXPECT_EQ(p.cpu().logical_cpus(), 2u);
  EXPECT_GT(p.memory().total_bytes(), 900u << 20);

  ASSERT_EQ(p.disks_size(), 1);  // loop devices are virtual: skipped
  const v1::Disk& d = p.disks(0);
  EXPECT_EQ(d.name(), "sda");
  EXPECT_EQ(d.size_bytes(), 2ull << 30);
  EXPECT_EQ(d.logical_sector_size(), 512u);
  EXPECT_EQ(d.physical_sector_size(), 512u);
  EXPECT_EQ(d.bus(), v1::DISK_BUS_ATA);
  EXPECT_EQ(d.controller_pci_address(), "0000:00:1f.2");
  EXPECT_EQ(d.controller_driver(), "ahci");
  EXPECT_EQ(d.device_driver(), "sd");
  EXPECT_EQ(d.model(), "QEMU HARDDISK");
  EXPECT_EQ(d.partition_table_type(), "dos");
  ASSERT_EQ(d.partitions_size(), 1);
  EXPECT_EQ(d.partitions(0).name(), "sda1");
  EXPECT_EQ(d.partitions(0).start_bytes(), 1048576u);
  EXPECT_EQ(d.partitions(0).fs_type(), "ext4");
  EXPECT_FALSE(d.partitions(0).fs_uuid().empty());

  ASSERT_EQ(p.nics_size(), 1);  // lo is virtual: skipped
  EXPECT_EQ(p.nics(0).name(), "enp0s2");
  EXPECT_EQ(p.nics(0).mac(), "52:54:00:c0:ff:ee");
  EXPECT_EQ(p.nics(0).driver(), "e1000");
  EXPECT_EQ(p.nics(0).pci_address(), "0000:00:02.0");

  const v1::PciDevice* nic = Pci(p, "0000:00:02.0");
  ASSERT_NE(nic, nullptr);
  EXPECT_EQ(nic->vendor_id(), 0x8086u);
  EXPECT_EQ(nic->device_id(), 0x100eu);
  EXPECT_EQ(nic->class_code(), 0x020000u);
  EXPECT_EQ(nic->driver(), "e1000");
  EXPECT_EQ(nic->modalias(),
            "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00");
  const v1::PciDevice* ahci = Pci(p, "0000:00:1f.2");
  ASSERT_NE(ahci, nullptr);
  const v1::BusDevice* lun = Child(*ahci, "sd");
  ASSERT_NE(lun, nullptr);
  EXPECT_EQ(lun->bus(), "scsi");
  EXPECT_EQ(lun->modalias(), "scsi:t-0x00");

  ASSERT_EQ(p.kernels_size(), 1);
  const v1::InstalledKernel& k = p.kernels(0);
  EXPECT_EQ(k.version(), p.running_kernel());
  EXPECT_TRUE(k.running());
  EXPECT_TRUE(k.module_tree_present());
  EXPECT_GT(k.loadable_module_count(), 3000u);
  EXPECT_FALSE(k.module_index().modules_alias().empty());
  // The fixture's initramfs is AHCI-only (MODULES=list).
  EXPECT_THAT(k.initramfs().modules(), Contains("ahci"));
  EXPECT_THAT(k.initramfs().modules(), Contains("sd_mod"));
  EXPECT_THAT(k.initramfs().modules(), ::testing::Not(Contains("virtio_blk")));
  EXPECT_EQ(k.initramfs().segments(0), "cpio+zstd");

  ASSERT_EQ(p.hypervisor_software_size(), 1);
  EXPECT_EQ(p.hypervisor_software(0).package(), "qemu-guest-agent");
  EXPECT_EQ(p.hypervisor_software(0).kind(),
            v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS);

  bool found_static = false;
  for (const auto& c : p.network().interfaces()) {
    if (c.name() == "enp0s2") {
      found_static = true;
      EXPECT_EQ(c.system(), "ifupdown");
      EXPECT_EQ(c.method(), "static");
      ASSERT_EQ(c.addresses_size(), 1);
      EXPECT_EQ(c.addresses(0), "192.0.2.10/24");
      EXPECT_EQ(c.gateway(), "192.0.2.1");
      EXPECT_TRUE(c.auto_start());
    }
  }
  EXPECT_TRUE(found_static);
  EXPECT_EQ(p.boot_loader().name(), "grub-pc");
  ASSERT_EQ(p.fstab_size(), 1);
  EXPECT_EQ(p.fstab(0).mount_point(), "/");
  EXPECT_EQ(p.fstab(0).ref_kind(), v1::DEVICE_REF_KIND_UUID);
  EXPECT_EQ(p.fstab(0).spec(), "UUID=" + d.partitions(0).fs_uuid());
}

TEST(ProfileCollector, VirtioBlkAndVirtioNet) {
  const v1::HardwareProfile& p = Shape("virtio-blk-net");
  EXPECT_EQ(p.firmware().mode(), v1::FIRMWARE_MODE_BIOS);
  ASSERT_EQ(p.disks_size(), 1);
  const v1::Disk& d = p.disks(0);
  EXPECT_EQ(d.name(), "vda");
  EXPECT_EQ(d.size_bytes(), 3ull << 30);
  EXPECT_EQ(d.bus(), v1::DISK_BUS_VIRTIO_BLK);
  EXPECT_EQ(d.controller_pci_address(), "0000:00:03.0");
  EXPECT_EQ(d.controller_driver(), "virtio-pci");
  EXPECT_EQ(d.device_driver(), "virtio_blk");
  ASSERT_EQ(p.nics_size(), 1);
  EXPECT_EQ(p.nics(0).name(), "enp0s2");
  EXPECT_EQ(p.nics(0).mac(), "52:54:00:12:34:56");
  EXPECT_EQ(p.nics(0).driver(), "virtio_net");
  // The virtio devices sit on the virtio bus under their PCI functions.
  const v1::PciDevice* blk = Pci(p, "0000:00:03.0");
  ASSERT_NE(blk, nullptr);
  EXPECT_EQ(blk->driver(), "virtio-pci");
  const v1::BusDevice* vdev = Child(*blk, "virtio_blk");
  ASSERT_NE(vdev, nullptr);
  EXPECT_EQ(vdev->bus(), "virtio");
  EXPECT_EQ(vdev->modalias(), "virtio:d00000002v00001AF4");
  const v1::PciDevice* net = Pci(p, "0000:00:02.0");
  ASSERT_NE(net, nullptr);
  ASSERT_NE(Child(*net, "virtio_net"), nullptr);
  EXPECT_EQ(Child(*net, "virtio_net")->modalias(), "virtio:d00000001v00001AF4");
  EXPECT_THAT(p.kernels(0).initramfs().modules(), Contains("virtio_blk"));
}

TEST(ProfileCollector, VirtioScsi) {
  const v1::HardwareProfile& p = Shape("virtio-scsi");
  ASSERT_EQ(p.disks_size(), 1);
  const v1::Disk& d = p.disks(0);
  EXPECT_EQ(d.name(), "sda");
  EXPECT_EQ(d.bus(), v1::DISK_BUS_VIRTIO_SCSI);
  EXPECT_EQ(d.controller_pci_address(), "0000:00:03.0");
  EXPECT_EQ(d.controller_driver(), "virtio-pci");
  EXPECT_EQ(d.device_driver(), "sd");
  const v1::PciDevice* hba = Pci(p, "0000:00:03.0");
  ASSERT_NE(hba, nullptr);
  const v1::BusDevice* vs = Child(*hba, "virtio_scsi");
  ASSERT_NE(vs, nullptr);
  EXPECT_EQ(vs->modalias(), "virtio:d00000008v00001AF4");
  const v1::BusDevice* lun = Child(*hba, "sd");
  ASSERT_NE(lun, nullptr);
  EXPECT_EQ(lun->modalias(), "scsi:t-0x00");
  ASSERT_EQ(p.nics_size(), 1);
  EXPECT_EQ(p.nics(0).mac(), "52:54:00:ab:cd:01");
  EXPECT_EQ(p.nics(0).driver(), "virtio_net");
}

TEST(ProfileCollector, UefiNvme) {
  const v1::HardwareProfile& p = Shape("uefi-nvme");
  EXPECT_EQ(p.firmware().mode(), v1::FIRMWARE_MODE_UEFI);
  EXPECT_NE(p.firmware().secure_boot(), v1::SECURE_BOOT_ENABLED);
  ASSERT_EQ(p.disks_size(), 1);
  const v1::Disk& d = p.disks(0);
  EXPECT_EQ(d.name(), "nvme0n1");
  EXPECT_EQ(d.size_bytes(), 2ull << 30);
  EXPECT_EQ(d.bus(), v1::DISK_BUS_NVME);
  EXPECT_EQ(d.controller_pci_address(), "0000:00:03.0");
  EXPECT_EQ(d.controller_driver(), "nvme");
  EXPECT_EQ(d.partition_table_type(), "gpt");
  ASSERT_EQ(d.partitions_size(), 3);
  EXPECT_EQ(d.partitions(0).name(), "nvme0n1p1");
  EXPECT_EQ(d.partitions(0).fs_type(), "vfat");
  EXPECT_EQ(d.partitions(0).part_type(),
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
  ASSERT_EQ(p.nics_size(), 1);
  EXPECT_EQ(p.nics(0).mac(), "52:54:00:ab:cd:02");
  EXPECT_EQ(p.nics(0).driver(), "e1000");
  EXPECT_EQ(p.boot_loader().name(), "grub-efi");
  EXPECT_FALSE(p.boot_loader().efi_binaries().empty());
  bool efi = false;
  for (const auto& e : p.fstab()) efi |= e.mount_point() == "/boot/efi";
  EXPECT_TRUE(efi);
  EXPECT_THAT(p.kernels(0).initramfs().modules(), Contains("nvme"));
}

TEST(ProfileCollector, TextRenderingNamesTheFacts) {
  std::string text = RenderHardwareProfileText(Shape("bios-ahci-e1000"));
  EXPECT_THAT(text, HasSubstr("Firmware:  bios"));
  EXPECT_THAT(text, HasSubstr("enp0s2  52:54:00:c0:ff:ee  driver e1000"));
  EXPECT_THAT(text, HasSubstr("controller 0000:00:1f.2 driver ahci"));
}

// --- hostile trees ----------------------------------------------------

Status CollectFrom(const ScratchDir& d) {
  CollectOptions o;
  o.root = d.path();
  return CollectHardwareProfile(o).status();
}

TEST(ProfileCollectorHostile, MinimalTreeCollects) {
  ScratchDir d;
  d.WriteMinimalMachine();
  CollectOptions o;
  o.root = d.path();
  auto p = CollectHardwareProfile(o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->cpu().model_name(), "Test CPU");
  EXPECT_EQ(p->memory().total_bytes(), 1024u * 1024);
  EXPECT_FALSE(p->warnings().empty());
}

TEST(ProfileCollectorHostile, SymlinkLoopInSysfs) {
  ScratchDir d;
  d.WriteMinimalMachine();
  d.Symlink("sys/class/net/eth0",
            "../../devices/pci0000:00/0000:00:02.0/net/eth0");
  d.Symlink("sys/devices/pci0000:00/0000:00:02.0", "0000:00:02.0");
  Status s = CollectFrom(d);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("symlink loop"));
}

TEST(ProfileCollectorHostile, SymlinkEscapingTheRoot) {
  ScratchDir d;
  d.WriteMinimalMachine();
  d.Symlink("etc/fstab", "../../../../../../../../../etc/passwd");
  Status s = CollectFrom(d);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("escapes the root"));
}

TEST(ProfileCollectorHostile, GarbagePciIdNamesThePath) {
  ScratchDir d;
  d.WriteMinimalMachine();
  d.Write("sys/devices/pci0000:00/0000:00:02.0/vendor", "0xzz\n");
  d.Symlink("sys/bus/pci/devices/0000:00:02.0",
            "../../../devices/pci0000:00/0000:00:02.0");
  Status s = CollectFrom(d);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("/sys/devices/pci0000:00/0000:00:02.0/vendor"));
}

TEST(ProfileCollectorHostile, TruncatedSecureBootVariable) {
  ScratchDir d;
  d.WriteMinimalMachine();
  d.Write(
      "sys/firmware/efi/efivars/"
      "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
      std::string("\x06\x00\x00", 3));
  Status s = CollectFrom(d);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("truncated"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("SecureBoot-"));
}

TEST(ProfileCollectorHostile, TruncatedCpuinfo) {
  ScratchDir d;
  d.Write("proc/cpuinfo", "proces");
  d.Write("proc/meminfo", "MemTotal:        1024 kB\n");
  Status s = CollectFrom(d);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("/proc/cpuinfo"));
}

TEST(ProfileCollectorHostile, GarbageInitramfs) {
  ScratchDir d;
  d.WriteMinimalMachine();
  d.Write("boot/vmlinuz-6.1.0-9-amd64", "");
  d.Write("boot/initrd.img-6.1.0-9-amd64", "this is not an initramfs");
  Status s = CollectFrom(d);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("/boot/initrd.img-6.1.0-9-amd64"));
}

TEST(ProfileCollectorHostile, MalformedFstabLine) {
  ScratchDir d;
  d.WriteMinimalMachine();
  d.Write("etc/fstab", "UUID=x / ext4 defaults 0 notanumber\n");
  Status s = CollectFrom(d);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("/etc/fstab line 1"));
}

}  // namespace
}  // namespace cairn
