// ProfileDiff on the recorded machine shapes: the scenarios of issue 5.
#include "server/profile_diff.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "profile_test_util.h"

namespace cairn {
namespace {

using profile_test::Shape;
using profile_test::ShapeRoot;
using ::testing::Contains;
using ::testing::HasSubstr;

const v1::NeededModule* Module(const v1::ProfileDiffPlan& p,
                               const std::string& name) {
  for (const auto& m : p.modules()) {
    if (m.module() == name) return &m;
  }
  return nullptr;
}

bool AnyContains(const google::protobuf::RepeatedPtrField<std::string>& v,
                 const std::string& needle) {
  for (const auto& s : v) {
    if (s.find(needle) != std::string::npos) return true;
  }
  return false;
}

v1::ProfileDiffPlan Diff(const v1::HardwareProfile& s,
                         const v1::HardwareProfile& t,
                         const ProfileDiffOptions& o = {}) {
  auto p = ProfileDiff(s, t, o);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : v1::ProfileDiffPlan();
}

TEST(ProfileDiff, AhciToVirtioBlkAddsTheDriverToTheInitramfs) {
  auto plan = Diff(Shape("bios-ahci-e1000"), Shape("virtio-blk-net"));
  EXPECT_EQ(plan.source_kernel(), Shape("bios-ahci-e1000").running_kernel());
  EXPECT_EQ(plan.module_index_backend(), "recorded-indices");
  for (const char* m : {"virtio_blk", "virtio_pci", "virtio", "virtio_ring"}) {
    const v1::NeededModule* e = Module(plan, m);
    ASSERT_NE(e, nullptr) << m;
    EXPECT_EQ(e->placement(), v1::MODULE_PLACEMENT_ADD_TO_INITRAMFS) << m;
    EXPECT_TRUE(e->boot_critical()) << m;
  }
  EXPECT_THAT(Module(plan, "virtio_blk")->depends_on(),
              testing::ElementsAre("virtio", "virtio_ring"));
  EXPECT_EQ(Module(plan, "ahci")->placement(),
            v1::MODULE_PLACEMENT_IN_INITRAMFS);
  // The NIC driver is loaded from the root file system: no initramfs change.
  EXPECT_EQ(Module(plan, "virtio_net")->placement(),
            v1::MODULE_PLACEMENT_IN_MODULE_TREE);
  EXPECT_FALSE(Module(plan, "virtio_net")->boot_critical());

  ASSERT_EQ(plan.disk_changes_size(), 1);
  const auto& d = plan.disk_changes(0);
  EXPECT_EQ(d.source_disk(), "sda");
  EXPECT_EQ(d.target_disk(), "vda");
  EXPECT_EQ(d.source_bus(), "ata");
  EXPECT_EQ(d.target_bus(), "virtio-blk");
  EXPECT_TRUE(d.controller_changes());
  EXPECT_THAT(d.device_name_changes(), Contains("/dev/sda -> /dev/vda"));
  EXPECT_THAT(d.device_name_changes(), Contains("/dev/sda1 -> /dev/vda1"));
  // The fixture's fstab and GRUB use UUIDs: nothing to rewrite.
  EXPECT_TRUE(d.affected_references().empty());
  EXPECT_TRUE(AnyContains(d.notes(), "by UUID: unaffected"));
  // The e1000 and sd are gone.
  bool e1000 = false;
  for (const auto& r : plan.removals()) e1000 |= r.what() == "module e1000";
  EXPECT_TRUE(e1000);
  EXPECT_TRUE(plan.conflicts().empty());
  EXPECT_TRUE(plan.blockers().empty()) << plan.blockers(0);
}

TEST(ProfileDiff, DeviceNameReferencesAreListedWhenNamesChange) {
  v1::HardwareProfile src = Shape("bios-ahci-e1000");
  v1::FstabEntry* e = src.add_fstab();
  e->set_spec("/dev/sda1");
  e->set_mount_point("/data");
  e->set_ref_kind(v1::DEVICE_REF_KIND_DEVICE_NAME);
  e->set_line(3);
  src.mutable_boot_loader()->add_device_references(
      "/boot/grub/grub.cfg: root=/dev/sda1");
  v1::CrypttabEntry* c = src.add_crypttab();
  c->set_name("secret");
  c->set_device("/dev/disk/by-path/pci-0000:00:1f.2-ata-1.0-part2");
  c->set_ref_kind(v1::DEVICE_REF_KIND_BY_PATH);
  c->set_line(1);
  auto plan = Diff(src, Shape("virtio-blk-net"));
  ASSERT_EQ(plan.disk_changes_size(), 1);
  const auto& refs = plan.disk_changes(0).affected_references();
  EXPECT_TRUE(AnyContains(refs, "/etc/fstab line 3: /dev/sda1")) << refs.size();
  EXPECT_TRUE(AnyContains(refs, "/boot/grub/grub.cfg: /dev/sda1"));
  EXPECT_TRUE(AnyContains(refs, "/etc/crypttab line 1: /dev/disk/by-path/"));
}

TEST(ProfileDiff, E1000ToVirtioNetWithMacChangeAndStaticAddress) {
  auto plan = Diff(Shape("bios-ahci-e1000"), Shape("virtio-blk-net"));
  ASSERT_EQ(plan.nic_mappings_size(), 1);
  const auto& m = plan.nic_mappings(0);
  EXPECT_EQ(m.source_name(), "enp0s2");
  EXPECT_EQ(m.source_mac(), "52:54:00:c0:ff:ee");
  EXPECT_EQ(m.source_driver(), "e1000");
  EXPECT_EQ(m.target_name(), "enp0s2");
  EXPECT_EQ(m.target_mac(), "52:54:00:12:34:56");
  EXPECT_EQ(m.target_driver(), "virtio_net");
  EXPECT_EQ(m.matched_by(), "pci-order");
  ASSERT_EQ(m.config_effects_size(), 1);
  EXPECT_THAT(m.config_effects(0), HasSubstr("keeps its name"));
  EXPECT_THAT(m.config_effects(0),
              HasSubstr("static 192.0.2.10/24 gateway 192.0.2.1"));

  // The same NIC configured by MAC (as netplan/networkd setups often are):
  // the match must be rewritten to the new MAC.
  v1::HardwareProfile src = Shape("bios-ahci-e1000");
  for (auto& c : *src.mutable_network()->mutable_interfaces()) {
    if (c.name() == "enp0s2") {
      c.set_name("");
      c.set_match_mac("52:54:00:c0:ff:ee");
    }
  }
  auto by_mac = Diff(src, Shape("virtio-blk-net"));
  ASSERT_EQ(by_mac.nic_mappings_size(), 1);
  EXPECT_THAT(by_mac.nic_mappings(0).config_effects(0),
              HasSubstr("rewrite the match to 52:54:00:12:34:56"));
}

TEST(ProfileDiff, ExplicitNicMapAndRenamedNic) {
  v1::HardwareProfile tgt = Shape("virtio-blk-net");
  tgt.mutable_nics(0)->set_name("ens2");
  ProfileDiffOptions o;
  o.nic_map = {{"52:54:00:c0:ff:ee", "ens2"}};
  auto plan = Diff(Shape("bios-ahci-e1000"), tgt, o);
  ASSERT_EQ(plan.nic_mappings_size(), 1);
  EXPECT_EQ(plan.nic_mappings(0).matched_by(), "explicit");
  EXPECT_THAT(plan.nic_mappings(0).config_effects(0),
              HasSubstr("will be called ens2"));
  o.nic_map = {{"eth9", "ens2"}};
  auto bad = ProfileDiff(Shape("bios-ahci-e1000"), tgt, o);
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("no NIC named eth9"));
}

TEST(ProfileDiff, BiosToUefiListsWhatItRequires) {
  auto plan = Diff(Shape("bios-ahci-e1000"), Shape("uefi-nvme"));
  const auto& b = plan.boot_mode();
  EXPECT_TRUE(b.changes());
  EXPECT_EQ(b.source_mode(), v1::FIRMWARE_MODE_BIOS);
  EXPECT_EQ(b.target_mode(), v1::FIRMWARE_MODE_UEFI);
  EXPECT_TRUE(AnyContains(b.requirements(), "[todo] an EFI System Partition"));
  EXPECT_TRUE(AnyContains(b.requirements(), "[todo] GRUB for UEFI"));
  EXPECT_TRUE(AnyContains(b.requirements(), "[todo] a GPT partition table"));
  // And the NVMe controller's driver goes into the initramfs.
  ASSERT_NE(Module(plan, "nvme"), nullptr);
  EXPECT_EQ(Module(plan, "nvme")->placement(),
            v1::MODULE_PLACEMENT_ADD_TO_INITRAMFS);
  EXPECT_EQ(Module(plan, "nvme_core")->placement(),
            v1::MODULE_PLACEMENT_ADD_TO_INITRAMFS);
  EXPECT_THAT(plan.disk_changes(0).device_name_changes(),
              Contains("/dev/sda1 -> /dev/nvme0n1p1"));

  auto back = Diff(Shape("uefi-nvme"), Shape("bios-ahci-e1000"));
  EXPECT_TRUE(back.boot_mode().changes());
  EXPECT_TRUE(
      AnyContains(back.boot_mode().requirements(), "[todo] GRUB for BIOS"));
  EXPECT_TRUE(AnyContains(back.boot_mode().requirements(),
                          "[todo] a BIOS boot partition"));
  EXPECT_TRUE(
      AnyContains(back.boot_mode().requirements(), "/boot/efi fstab entry"));
}

TEST(ProfileDiff, BiggerAndSmallerDisks) {
  auto grow = Diff(Shape("bios-ahci-e1000"), Shape("virtio-blk-net"));
  EXPECT_EQ(grow.disk_changes(0).size_change(), "grow");
  EXPECT_EQ(grow.disk_changes(0).target_size_bytes(), 3ull << 30);

  auto shrink = Diff(Shape("virtio-blk-net"), Shape("bios-ahci-e1000"));
  // The 3 GiB disk's only partition ends at 2 GiB + 1 MiB - 512... it still
  // fits a 2 GiB disk only if it ends before 2 GiB.
  const auto& part = Shape("virtio-blk-net").disks(0).partitions(0);
  uint64_t end = part.start_bytes() + part.size_bytes();
  ASSERT_LE(end, 2ull << 30);
  EXPECT_EQ(shrink.disk_changes(0).size_change(), "shrink-fits");
  EXPECT_TRUE(shrink.blockers().empty());

  v1::HardwareProfile small = Shape("virtio-blk-net");
  small.mutable_disks(0)->set_size_bytes(1ull << 30);
  auto blocked = Diff(Shape("bios-ahci-e1000"), small);
  EXPECT_EQ(blocked.disk_changes(0).size_change(), "shrink-blocked");
  EXPECT_TRUE(AnyContains(blocked.blockers(), "smaller than the partitions"));
}

TEST(ProfileDiff, SectorSizeChangeIsABlocker) {
  v1::HardwareProfile tgt = Shape("virtio-blk-net");
  tgt.mutable_disks(0)->set_logical_sector_size(4096);
  auto plan = Diff(Shape("bios-ahci-e1000"), tgt);
  EXPECT_TRUE(plan.disk_changes(0).sector_size_changes());
  EXPECT_TRUE(
      AnyContains(plan.blockers(), "logical sector size changes 512 -> 4096"));
}

// A source kernel without the NVMe driver (its indices with every nvme
// line removed, as a kernel built without CONFIG_BLK_DEV_NVME would have).
v1::HardwareProfile SourceWithoutNvme() {
  v1::HardwareProfile src = Shape("bios-ahci-e1000");
  auto* idx = src.mutable_kernels(0)->mutable_module_index();
  auto drop = [](const std::string& text) {
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
      size_t j = text.find('\n', i);
      if (j == std::string::npos) j = text.size();
      std::string line = text.substr(i, j - i);
      if (line.find("nvme") == std::string::npos) out += line + "\n";
      i = j + 1;
    }
    return out;
  };
  idx->set_modules_alias(drop(idx->modules_alias()));
  idx->set_modules_dep(drop(idx->modules_dep()));
  return src;
}

TEST(ProfileDiff, DeviceTheSourceKernelCannotDriveIsAConflict) {
  auto plan = Diff(SourceWithoutNvme(), Shape("uefi-nvme"));
  ASSERT_EQ(plan.conflicts_size(), 1);
  const auto& c = plan.conflicts(0);
  EXPECT_EQ(c.device(), "0000:00:03.0");
  EXPECT_EQ(c.target_driver(), "nvme");
  EXPECT_THAT(c.reason(), HasSubstr("path to the root disk"));
  EXPECT_THAT(c.options(), Contains(kUseTemplateKernel));
  EXPECT_TRUE(c.chosen().empty());  // never chosen for the user
  EXPECT_TRUE(AnyContains(plan.blockers(), "choose explicitly"));

  ProfileDiffOptions o;
  o.conflict_choice = kUseTemplateKernel;
  auto chosen = Diff(SourceWithoutNvme(), Shape("uefi-nvme"), o);
  ASSERT_EQ(chosen.conflicts_size(), 1);
  EXPECT_EQ(chosen.conflicts(0).chosen(), kUseTemplateKernel);
  EXPECT_FALSE(AnyContains(chosen.blockers(), "choose explicitly"));

  o.conflict_choice = "whatever";
  EXPECT_TRUE(absl::IsInvalidArgument(
      ProfileDiff(SourceWithoutNvme(), Shape("uefi-nvme"), o).status()));
}

TEST(ProfileDiff, ModaliasWithGlobCharactersIsRefused) {
  v1::HardwareProfile tgt = Shape("virtio-blk-net");
  tgt.mutable_pci_devices(0)->set_modalias("pci:*");
  tgt.mutable_pci_devices(0)->set_driver("anything");
  auto r = ProfileDiff(Shape("bios-ahci-e1000"), tgt, {});
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("glob"));
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(tgt.pci_devices(0).address()));
}

TEST(ProfileDiff, GuestToolsForAnotherHypervisorAreRemoved) {
  v1::HardwareProfile tgt = Shape("virtio-blk-net");
  tgt.mutable_platform()->set_hypervisor("vmware");
  auto plan = Diff(Shape("bios-ahci-e1000"), tgt);
  bool qga = false;
  for (const auto& r : plan.removals()) {
    if (r.what() == "package qemu-guest-agent") {
      qga = true;
      EXPECT_THAT(r.reason(), HasSubstr("a vmware guest"));
    }
  }
  EXPECT_TRUE(qga);
  // Same hypervisor: kept.
  auto same = Diff(Shape("bios-ahci-e1000"), Shape("virtio-blk-net"));
  for (const auto& r : same.removals())
    EXPECT_NE(r.what(), "package qemu-guest-agent");
}

TEST(ProfileDiff, LibkmodBackendGivesTheSamePlan) {
  profile_test::ScratchDir scratch;
  ProfileDiffOptions o;
  o.source_module_dir = profile_test::MakeModuleTree(
      scratch, "bios-ahci-e1000", Shape("bios-ahci-e1000").running_kernel());
  auto kmod = Diff(Shape("bios-ahci-e1000"), Shape("virtio-scsi"), o);
  auto files = Diff(Shape("bios-ahci-e1000"), Shape("virtio-scsi"));
  EXPECT_THAT(kmod.module_index_backend(), HasSubstr("libkmod:"));
  ASSERT_EQ(kmod.modules_size(), files.modules_size());
  for (int i = 0; i < kmod.modules_size(); ++i) {
    EXPECT_EQ(kmod.modules(i).module(), files.modules(i).module());
    EXPECT_EQ(kmod.modules(i).placement(), files.modules(i).placement());
  }
  ASSERT_NE(Module(files, "virtio_scsi"), nullptr);
  EXPECT_EQ(Module(files, "virtio_scsi")->placement(),
            v1::MODULE_PLACEMENT_ADD_TO_INITRAMFS);
  // sd_mod drives the LUN on both machines and is already in the initramfs.
  EXPECT_EQ(Module(files, "sd_mod")->placement(),
            v1::MODULE_PLACEMENT_IN_INITRAMFS);
  // virtio-scsi disks are still sdX: the names do not change.
  EXPECT_TRUE(files.disk_changes(0).device_name_changes().empty());
  EXPECT_TRUE(files.disk_changes(0).controller_changes());
}

TEST(ProfileDiff, JsonAndTextRenderings) {
  auto plan = Diff(Shape("bios-ahci-e1000"), Shape("uefi-nvme"));
  auto json = ProfileDiffToJson(plan);
  ASSERT_TRUE(json.ok());
  nlohmann::json j = nlohmann::json::parse(*json);
  EXPECT_EQ(j["format"], "cairn.profile_diff_plan");
  EXPECT_EQ(j["ready"], plan.blockers().empty());
  EXPECT_EQ(j["boot_mode"]["source_mode"], "bios");
  EXPECT_EQ(j["boot_mode"]["target_mode"], "uefi");
  bool nvme = false;
  for (const auto& m : j["modules"]) {
    if (m["module"] == "nvme") {
      nvme = true;
      EXPECT_EQ(m["placement"], "add_to_initramfs");
      EXPECT_EQ(m["boot_critical"], true);
    }
  }
  EXPECT_TRUE(nvme);
  std::string text = RenderProfileDiffText(plan);
  EXPECT_THAT(text, HasSubstr("nvme  add_to_initramfs  [boot-critical]"));
  EXPECT_THAT(text, HasSubstr("Boot mode: bios -> uefi (changes)"));
  EXPECT_THAT(text,
              HasSubstr("enp0s2 52:54:00:c0:ff:ee (e1000 0000:00:02.0) -> "));
}

}  // namespace
}  // namespace cairn
