// The text edits of a restore build (media_agent/guest_config_edits.h).
#include "media_agent/guest_config_edits.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace cairn {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::optional<std::string> FakeUuid(std::string_view spec) {
  auto part = PartitionOfDeviceName(spec);
  if (!part.has_value() || *part == 9) return std::nullopt;
  return "UUID=uuid-of-" + std::to_string(*part);
}

v1::NicRename Rename(std::string from, std::string from_mac, std::string to,
                     std::string to_mac) {
  v1::NicRename r;
  r.set_source_name(from);
  r.set_source_mac(from_mac);
  r.set_target_name(to);
  r.set_target_mac(to_mac);
  return r;
}

TEST(PartitionOfDeviceName, KernelNames) {
  EXPECT_EQ(PartitionOfDeviceName("/dev/sda1"), 1u);
  EXPECT_EQ(PartitionOfDeviceName("/dev/sdb"), 0u);
  EXPECT_EQ(PartitionOfDeviceName("/dev/vda15"), 15u);
  EXPECT_EQ(PartitionOfDeviceName("/dev/xvda2"), 2u);
  EXPECT_EQ(PartitionOfDeviceName("/dev/nvme0n1p3"), 3u);
  EXPECT_EQ(PartitionOfDeviceName("/dev/nvme0n1"), 0u);
  EXPECT_EQ(PartitionOfDeviceName("/dev/mmcblk0p2"), 2u);
  EXPECT_EQ(PartitionOfDeviceName("/dev/mapper/root"), std::nullopt);
  EXPECT_EQ(PartitionOfDeviceName("/dev/md0"), std::nullopt);
  EXPECT_EQ(PartitionOfDeviceName("UUID=abc"), std::nullopt);
  EXPECT_EQ(PartitionOfDeviceName("/dev/sd1"), std::nullopt);
  EXPECT_EQ(PartitionOfDeviceName("/dev/disk/by-uuid/x"), std::nullopt);
  EXPECT_TRUE(IsUnstableDeviceReference(
      "/dev/disk/by-path/pci-0000:00:1f.2-ata-1-part1"));
  EXPECT_TRUE(IsUnstableDeviceReference("/dev/disk/by-id/ata-QEMU-part1"));
  EXPECT_FALSE(IsUnstableDeviceReference("/dev/disk/by-uuid/1234"));
  EXPECT_FALSE(IsUnstableDeviceReference("LABEL=root"));
}

TEST(RewriteFstab, DeviceNamesBecomeUuidsAndEverythingElseStays) {
  const std::string in =
      "# /etc/fstab: /dev/sda1 was the installer's name\n"
      "/dev/sda1\t/\text4\terrors=remount-ro 0 1\n"
      "UUID=1111 /boot ext4 defaults 0 2\n"
      "  /dev/sda2   none  swap  sw  0 0\n"
      "proc /proc proc defaults 0 0\n"
      "/dev/sda9 /data ext4 defaults 0 2\n";
  ConfigEdit e = RewriteFstab(in, FakeUuid);
  EXPECT_EQ(e.text,
            "# /etc/fstab: /dev/sda1 was the installer's name\n"
            "UUID=uuid-of-1\t/\text4\terrors=remount-ro 0 1\n"
            "UUID=1111 /boot ext4 defaults 0 2\n"
            "  UUID=uuid-of-2   none  swap  sw  0 0\n"
            "proc /proc proc defaults 0 0\n"
            "/dev/sda9 /data ext4 defaults 0 2\n");
  EXPECT_THAT(
      e.changes,
      ElementsAre("line 2: /dev/sda1 -> UUID=uuid-of-1",
                  "line 4: /dev/sda2 -> UUID=uuid-of-2",
                  "line 6: /dev/sda9 left as it is (no stable id found)"));
}

TEST(RewriteFstab, NothingToDoIsNoChange) {
  const std::string in = "UUID=1 / ext4 defaults 0 1";  // no final newline
  ConfigEdit e = RewriteFstab(in, FakeUuid);
  EXPECT_FALSE(e.changed());
  EXPECT_EQ(e.text, in);
}

TEST(AddFstabEntry, AppendsOnceAndKeepsAnExistingMount) {
  ConfigEdit e = AddFstabEntry("UUID=1 / ext4 defaults 0 1",
                               "UUID=AB-CD\t/boot/efi\tvfat\tumask=0077\t0\t1",
                               "/boot/efi", "ESP");
  EXPECT_EQ(e.text,
            "UUID=1 / ext4 defaults 0 1\n# ESP\n"
            "UUID=AB-CD\t/boot/efi\tvfat\tumask=0077\t0\t1\n");
  EXPECT_TRUE(e.changed());
  ConfigEdit again = AddFstabEntry(e.text, "UUID=EF-01 /boot/efi vfat x 0 1",
                                   "/boot/efi", "ESP");
  EXPECT_FALSE(again.changed());
  EXPECT_EQ(again.text, e.text);
  EXPECT_TRUE(AddFstabEntry("# UUID=1 /boot/efi vfat x 0 1\n",
                            "UUID=2 /boot/efi vfat x 0 1", "/boot/efi", "ESP")
                  .changed())
      << "a commented-out mount does not count";
}

TEST(RewriteCrypttab, SecondField) {
  ConfigEdit e =
      RewriteCrypttab("cryptroot /dev/nvme0n1p3 none luks,discard\n", FakeUuid);
  EXPECT_EQ(e.text, "cryptroot UUID=uuid-of-3 none luks,discard\n");
}

TEST(RewriteGrubDefaults, RootAndResumeOnly) {
  ConfigEdit e = RewriteGrubDefaults(
      "GRUB_DEFAULT=0\n"
      "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet resume=/dev/sda2\"\n"
      "GRUB_CMDLINE_LINUX=\"root=/dev/sda1 console=ttyS0 myroot=/dev/sda1\"\n",
      FakeUuid);
  EXPECT_EQ(e.text,
            "GRUB_DEFAULT=0\n"
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet resume=UUID=uuid-of-2\"\n"
            "GRUB_CMDLINE_LINUX=\"root=UUID=uuid-of-1 console=ttyS0 "
            "myroot=/dev/sda1\"\n");
  EXPECT_EQ(e.changes.size(), 2u);
}

TEST(RenameNics, Ifupdown) {
  ConfigEdit e = RenameNics(
      "# enp0s2 is the uplink\n"
      "auto lo enp0s2\n"
      "iface enp0s2 inet static\n"
      "    address 192.0.2.10/24\n"
      "iface enp0s2.10 inet manual\n"
      "iface enp0s20 inet dhcp\n",
      {Rename("enp0s2", "52:54:00:c0:ff:ee", "ens3", "52:54:00:12:34:56")});
  EXPECT_EQ(e.text,
            "# enp0s2 is the uplink\n"
            "auto lo ens3\n"
            "iface ens3 inet static\n"
            "    address 192.0.2.10/24\n"
            "iface ens3.10 inet manual\n"
            "iface enp0s20 inet dhcp\n");
  EXPECT_EQ(e.changes.size(), 3u);
}

TEST(RenameNics, NetplanNetworkManagerNetworkdAndUdevByMac) {
  const auto r = {
      Rename("eth0", "52:54:00:c0:ff:ee", "ens3", "52:54:00:12:34:56")};
  EXPECT_EQ(RenameNics("network:\n  ethernets:\n    eth0:\n      match:\n"
                       "        macaddress: 52:54:00:c0:ff:ee\n"
                       "      set-name: eth0\n",
                       r)
                .text,
            "network:\n  ethernets:\n    ens3:\n      match:\n"
            "        macaddress: 52:54:00:12:34:56\n"
            "      set-name: ens3\n");
  EXPECT_EQ(RenameNics("[ethernet]\nmac-address=52:54:00:C0:FF:EE\n"
                       "[connection]\ninterface-name=eth0\n; eth0 note\n",
                       r)
                .text,
            "[ethernet]\nmac-address=52:54:00:12:34:56\n"
            "[connection]\ninterface-name=ens3\n; eth0 note\n")
      << "upper-case MACs stay upper case, ini comments stay";
  EXPECT_EQ(
      RenameNics("[Match]\nName=eth0\nMACAddress=52:54:00:c0:ff:ee\n", r).text,
      "[Match]\nName=ens3\nMACAddress=52:54:00:12:34:56\n");
  EXPECT_EQ(
      RenameNics("SUBSYSTEM==\"net\", ATTR{address}==\"52:54:00:c0:ff:ee\", "
                 "NAME=\"eth0\"\n",
                 r)
          .text,
      "SUBSYSTEM==\"net\", ATTR{address}==\"52:54:00:12:34:56\", "
      "NAME=\"ens3\"\n");
}

TEST(RenameNics, SwappedNamesComeOutRight) {
  ConfigEdit e = RenameNics(
      "auto eth0 eth1\n",
      {Rename("eth0", "", "eth1", ""), Rename("eth1", "", "eth0", "")});
  EXPECT_EQ(e.text, "auto eth1 eth0\n");
}

TEST(RenameNics, UnchangedNamesAreNoEdit) {
  ConfigEdit e =
      RenameNics("auto enp0s2\n", {Rename("enp0s2", "", "enp0s2", "")});
  EXPECT_FALSE(e.changed());
}

TEST(InitramfsModules, AppendsOnlyWhatIsMissing) {
  const std::string in = "# list\nahci\nvirtio-pci\n";
  ConfigEdit e = AddInitramfsToolsModules(
      in, {"virtio_blk", "virtio_pci", "nvme"}, "Added by Cairn");
  EXPECT_EQ(e.text,
            "# list\nahci\nvirtio-pci\n# Added by Cairn\nvirtio_blk\nnvme\n");
  EXPECT_THAT(e.changes, ElementsAre("added virtio_blk", "added nvme"));
  ConfigEdit again = AddInitramfsToolsModules(
      e.text, {"virtio_blk", "virtio_pci", "nvme"}, "Added by Cairn");
  EXPECT_FALSE(again.changed());
  EXPECT_EQ(again.text, e.text);
}

TEST(InitramfsModules, PolicyAndDracut) {
  EXPECT_EQ(InitramfsToolsModulesPolicy("MODULES=list\n"), "list");
  EXPECT_EQ(InitramfsToolsModulesPolicy("#MODULES=dep\nMODULES=\"dep\"\n"),
            "dep");
  EXPECT_EQ(InitramfsToolsModulesPolicy(""), "most");
  EXPECT_THAT(DracutDropIn({"virtio_blk", "nvme"}, "why"),
              HasSubstr("add_drivers+=\" virtio_blk nvme \""));
  EXPECT_TRUE(IsValidModuleName("virtio_blk"));
  EXPECT_FALSE(IsValidModuleName("a b"));
  EXPECT_FALSE(IsValidModuleName("../x"));
  EXPECT_FALSE(IsValidModuleName(""));
}

}  // namespace
}  // namespace cairn
