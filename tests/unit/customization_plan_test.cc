// PlanCustomization on the recorded machine shapes, and the builder's plan
// checks (server/customization_plan.h, media_agent/image_customizer.h).
#include "server/customization_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/strings.h"
#include "media_agent/image_customizer.h"
#include "profile_test_util.h"
#include "server/profile_diff.h"

namespace cairn {
namespace {

using profile_test::Shape;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::CustomizationPlan Plan(const std::string& from, const std::string& to,
                           bool drop_tools = false,
                           const ProfileDiffOptions& d = {}) {
  auto diff = ProfileDiff(Shape(from), Shape(to), d);
  EXPECT_TRUE(diff.ok()) << diff.status();
  CustomizationPlanOptions o;
  o.source_backup_id = "b1";
  o.target = "client:lab-7";
  o.drop_guest_tools = drop_tools;
  o.target_profile_sha256 = ProfileSha256Hex(Shape(to));
  auto plan = PlanCustomization(Shape(from), Shape(to), *diff, o);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : v1::CustomizationPlan();
}

TEST(CustomizationPlan, AhciToVirtioAddsDriversAndGrowsTheDisk) {
  v1::CustomizationPlan p = Plan("bios-ahci-e1000", "virtio-blk-net");
  EXPECT_EQ(p.format_version(), 1u);
  EXPECT_EQ(p.kernel_version(), Shape("bios-ahci-e1000").running_kernel());
  EXPECT_THAT(p.initramfs_modules(),
              testing::IsSupersetOf({"virtio_blk", "virtio_pci"}));
  EXPECT_TRUE(p.rebuild_initramfs());
  EXPECT_EQ(p.source_disk_bytes(), 2ull << 30);
  EXPECT_EQ(p.target_disk_bytes(), 3ull << 30);
  EXPECT_TRUE(p.blockers().empty()) << p.blockers(0);
  EXPECT_EQ(ValidateCustomizationPlan(p), absl::OkStatus());
  std::string text = RenderCustomizationPlanText(p);
  EXPECT_THAT(text, HasSubstr("grow the disk"));
  EXPECT_THAT(text, HasSubstr("virtio_blk"));
  EXPECT_THAT(text, HasSubstr("Ready to build."));
  // The same shapes give the same target hash; another shape another.
  EXPECT_EQ(p.target_profile_sha256(),
            ProfileSha256Hex(Shape("virtio-blk-net")));
  EXPECT_NE(p.target_profile_sha256(), ProfileSha256Hex(Shape("virtio-scsi")));
}

TEST(CustomizationPlan, OwnHardwareChangesNothing) {
  // debian-uefi-gpt recorded on its own hardware model (OVMF, AHCI, e1000):
  // the AHCI path is in its initramfs, the NIC keeps name and MAC, the disk
  // its size, fstab and grub.cfg are by UUID. The build must not start.
  v1::CustomizationPlan p = Plan("uefi-ahci-e1000", "uefi-ahci-e1000");
  EXPECT_TRUE(p.blockers().empty()) << p.blockers(0);
  EXPECT_THAT(p.initramfs_modules(), testing::IsEmpty());
  EXPECT_FALSE(p.rebuild_initramfs());
  EXPECT_THAT(p.nic_renames(), testing::IsEmpty());
  EXPECT_FALSE(p.stable_device_references());
  EXPECT_FALSE(p.regenerate_boot_config());
  EXPECT_EQ(p.esp_bytes(), 0u);
  EXPECT_EQ(p.source_disk_bytes(), p.target_disk_bytes());
  EXPECT_EQ(p.target_firmware(), v1::FIRMWARE_MODE_UEFI);
  EXPECT_THAT(p.steps(), ElementsAre(HasSubstr("nothing to change")));
  EXPECT_FALSE(PlanChangesAnything(p));
  EXPECT_EQ(ValidateCustomizationPlan(p), absl::OkStatus());
}

TEST(CustomizationPlan, JsonRoundTrip) {
  v1::CustomizationPlan p = Plan("bios-ahci-e1000", "virtio-blk-net");
  auto j = CustomizationPlanToJson(p);
  ASSERT_TRUE(j.ok());
  EXPECT_THAT(*j, HasSubstr("\"initramfs_modules\""));
  auto back = CustomizationPlanFromJson(*j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), p.SerializeAsString());
  EXPECT_EQ(CustomizationPlanFromJson("{\"nope\": 1}").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CustomizationPlanFromJson("not json").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CustomizationPlan, BiosToUefiNeedsRoomForAnEsp) {
  // The recorded UEFI target has a disk as large as the source's: no room.
  v1::CustomizationPlan p = Plan("bios-ahci-e1000", "uefi-nvme");
  bool found = false;
  for (const auto& b : p.blockers()) {
    found |= b.find("EFI System Partition") != std::string::npos;
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(p.esp_bytes(), 0u);
  Status s = ValidateCustomizationPlan(p);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("blockers"));
}

TEST(CustomizationPlan, BiosToUefiOnALargerDiskCreatesAnEsp) {
  v1::HardwareProfile target = Shape("uefi-nvme");
  for (auto& d : *target.mutable_disks()) d.set_size_bytes(3ull << 30);
  auto diff = ProfileDiff(Shape("bios-ahci-e1000"), target, {});
  ASSERT_TRUE(diff.ok()) << diff.status();
  auto p = PlanCustomization(Shape("bios-ahci-e1000"), target, *diff, {});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->blockers().empty()) << p->blockers(0);
  EXPECT_EQ(p->esp_bytes(), 128u << 20);
  EXPECT_EQ(p->target_firmware(), v1::FIRMWARE_MODE_UEFI);
  EXPECT_TRUE(p->regenerate_boot_config());
  EXPECT_THAT(p->initramfs_modules(), testing::Contains("nvme"));
  EXPECT_THAT(RenderCustomizationPlanText(*p), HasSubstr("x86_64-efi"));
  EXPECT_EQ(ValidateCustomizationPlan(*p), absl::OkStatus());
  // Secure Boot on the target blocks it.
  target.mutable_firmware()->set_secure_boot(v1::SECURE_BOOT_ENABLED);
  diff = ProfileDiff(Shape("bios-ahci-e1000"), target, {});
  ASSERT_TRUE(diff.ok());
  p = PlanCustomization(Shape("bios-ahci-e1000"), target, *diff, {});
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->blockers().empty());
}

TEST(ValidateCustomizationPlan, RefusesHostileOrUnknownPlans) {
  v1::CustomizationPlan p = Plan("bios-ahci-e1000", "virtio-blk-net");
  auto refused = [](v1::CustomizationPlan q) {
    return ValidateCustomizationPlan(q).code();
  };
  v1::CustomizationPlan q = p;
  q.set_format_version(2);
  EXPECT_EQ(refused(q), absl::StatusCode::kInvalidArgument);
  q = p;
  q.add_initramfs_modules("virtio_blk; rm -rf /");
  EXPECT_EQ(refused(q), absl::StatusCode::kInvalidArgument);
  q = p;
  q.set_kernel_version("../../etc");
  EXPECT_EQ(refused(q), absl::StatusCode::kInvalidArgument);
  q = p;
  q.add_disable_units("x; reboot");
  EXPECT_EQ(refused(q), absl::StatusCode::kInvalidArgument);
  q = p;
  q.add_disable_units("qemu-guest-agent.service");
  EXPECT_EQ(refused(q), absl::StatusCode::kOk);
  q = p;
  q.set_target_disk_bytes(1 << 30);  // a shrink: checked when the build runs
  EXPECT_EQ(refused(q), absl::StatusCode::kOk);
  q = p;
  q.set_target_firmware(v1::FIRMWARE_MODE_UEFI);
  EXPECT_EQ(refused(q), absl::StatusCode::kUnimplemented);  // no ESP size
  q.set_esp_bytes(128 << 20);
  EXPECT_EQ(refused(q), absl::StatusCode::kOk);
  q.set_esp_bytes(1 << 20);
  EXPECT_EQ(refused(q), absl::StatusCode::kInvalidArgument);
  q.set_esp_bytes(128 << 20);
  q.set_target_disk_bytes(q.source_disk_bytes() + (64 << 20));
  EXPECT_EQ(refused(q), absl::StatusCode::kInvalidArgument);  // no room
  q = p;
  q.set_source_firmware(v1::FIRMWARE_MODE_UEFI);
  q.set_target_firmware(v1::FIRMWARE_MODE_BIOS);
  EXPECT_EQ(refused(q), absl::StatusCode::kUnimplemented);
}

TEST(CustomizationPlan, GuestToolsAreDisabledOnlyWhenAsked) {
  // The recorded shapes are all QEMU guests with qemu-guest-agent; a target
  // whose hypervisor is another one is simulated by clearing it.
  auto diff =
      ProfileDiff(Shape("bios-ahci-e1000"), Shape("virtio-blk-net"), {});
  ASSERT_TRUE(diff.ok());
  v1::HardwareProfile physical = Shape("virtio-blk-net");
  physical.mutable_platform()->set_hypervisor("");
  physical.mutable_platform()->set_virtual_machine(false);
  CustomizationPlanOptions o;
  auto keep = PlanCustomization(Shape("bios-ahci-e1000"), physical, *diff, o);
  ASSERT_TRUE(keep.ok());
  EXPECT_TRUE(keep->disable_units().empty());
  o.drop_guest_tools = true;
  auto drop = PlanCustomization(Shape("bios-ahci-e1000"), physical, *diff, o);
  ASSERT_TRUE(drop.ok());
  bool has_units = false;
  for (const auto& h : Shape("bios-ahci-e1000").hypervisor_software()) {
    has_units |= h.kind() == v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS &&
                 !h.enabled_units().empty();
  }
  if (has_units) {
    EXPECT_FALSE(drop->disable_units().empty());
    EXPECT_EQ(ValidateCustomizationPlan(*drop), absl::OkStatus());
  }
}

// The recorded AHCI machine whose kernel lacks the NVMe driver (the module
// index lines naming nvme removed), as after `rm -r drivers/nvme; depmod`.
v1::HardwareProfile WithoutNvme(v1::HardwareProfile p) {
  auto strip = [](const std::string& text) {
    std::string out;
    for (std::string_view line : SplitLines(text)) {
      if (line.find("nvme") == std::string_view::npos) {
        out += StrCat(line, "\n");
      }
    }
    return out;
  };
  for (auto& k : *p.mutable_kernels()) {
    v1::ModuleIndexFiles* m = k.mutable_module_index();
    m->set_modules_alias(strip(m->modules_alias()));
    m->set_modules_dep(strip(m->modules_dep()));
    m->set_modules_builtin(strip(m->modules_builtin()));
  }
  return p;
}

v1::HardwareProfile UefiNvme3G() {
  v1::HardwareProfile t = Shape("uefi-nvme");
  for (auto& d : *t.mutable_disks()) d.set_size_bytes(3ull << 30);
  return t;
}

StatusOr<v1::CustomizationPlan> TemplatePlan(
    const v1::HardwareProfile& source, const v1::HardwareProfile* tmpl,
    const std::string& choice = kUseTemplateKernel) {
  ProfileDiffOptions d;
  d.conflict_choice = choice;
  CAIRN_ASSIGN_OR_RETURN(auto diff, ProfileDiff(source, UefiNvme3G(), d));
  CustomizationPlanOptions o;
  o.source_backup_id = "src";
  o.target = "client:lab-nvme";
  o.template_profile = tmpl;
  o.template_name = "debian-generic";
  o.template_image_id = tmpl == nullptr ? "" : "tmpl";
  return PlanCustomization(source, UefiNvme3G(), diff, o);
}

bool AnyContains(const google::protobuf::RepeatedPtrField<std::string>& v,
                 const std::string& s) {
  for (const auto& x : v) {
    if (x.find(s) != std::string::npos) return true;
  }
  return false;
}

TEST(CustomizationPlanTemplateKernel, UndecidedConflictIsABlocker) {
  auto p = TemplatePlan(WithoutNvme(Shape("bios-ahci-e1000")), nullptr, "");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(AnyContains(p->blockers(), "choose explicitly"));
  EXPECT_FALSE(p->has_template_kernel());
}

TEST(CustomizationPlanTemplateKernel, ChosenWithoutATemplateIsRefused) {
  auto p = TemplatePlan(WithoutNvme(Shape("bios-ahci-e1000")), nullptr);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(AnyContains(p->blockers(),
                          "the template kernel was chosen but "
                          "no template was given"));
  EXPECT_FALSE(p->has_template_kernel());
  EXPECT_EQ(ValidateCustomizationPlan(*p).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CustomizationPlanTemplateKernel, BootsTheTemplatesKernel) {
  const v1::HardwareProfile tmpl = Shape("bios-ahci-e1000");
  const v1::HardwareProfile source = WithoutNvme(tmpl);
  auto p = TemplatePlan(source, &tmpl);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(p->blockers().empty()) << p->blockers(0);
  ASSERT_TRUE(p->has_template_kernel());
  EXPECT_EQ(p->template_kernel().image_id(), "tmpl");
  EXPECT_EQ(p->template_kernel().template_name(), "debian-generic");
  EXPECT_EQ(p->template_kernel().template_profile_sha256(),
            ProfileSha256Hex(tmpl));
  EXPECT_EQ(p->kernel_version(), p->template_kernel().kernel_version());
  EXPECT_EQ(p->kernel_version(), tmpl.running_kernel());
  EXPECT_THAT(p->initramfs_modules(), testing::Contains("nvme"));
  EXPECT_TRUE(p->rebuild_initramfs());
  EXPECT_TRUE(p->regenerate_boot_config());
  EXPECT_TRUE(AnyContains(p->steps(), "from boot template 'debian-generic'"));
  // Same version as the source's: the step says the tree is replaced.
  EXPECT_TRUE(AnyContains(p->steps(), "replaces the source's"));
  EXPECT_EQ(ValidateCustomizationPlan(*p), absl::OkStatus());
  v1::CustomizationPlan q = *p;
  q.mutable_template_kernel()->set_kernel_version("6.1.0-99-amd64");
  EXPECT_EQ(ValidateCustomizationPlan(q).code(),
            absl::StatusCode::kInvalidArgument);  // not the booted kernel
  q = *p;
  q.mutable_template_kernel()->clear_image_id();
  EXPECT_EQ(ValidateCustomizationPlan(q).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(RenderCustomizationPlanText(*p),
              HasSubstr("of boot template debian-generic (image tmpl)"));
  auto j = CustomizationPlanToJson(*p);
  ASSERT_TRUE(j.ok());
  EXPECT_THAT(*j, HasSubstr("\"template_kernel\""));
  auto back = CustomizationPlanFromJson(*j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), p->SerializeAsString());
}

TEST(CustomizationPlanTemplateKernel, TemplatesNewestKernelIsUsed) {
  v1::HardwareProfile tmpl = Shape("bios-ahci-e1000");
  ASSERT_FALSE(tmpl.kernels().empty());
  // An offline profile has no running kernel: the newest installed one.
  tmpl.clear_running_kernel();
  for (auto& k : *tmpl.mutable_kernels()) k.set_running(false);
  tmpl.mutable_kernels(0)->set_version("9.9.9-template-amd64");
  auto p = TemplatePlan(WithoutNvme(Shape("bios-ahci-e1000")), &tmpl);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(p->blockers().empty()) << p->blockers(0);
  EXPECT_EQ(p->kernel_version(), "9.9.9-template-amd64");
  EXPECT_FALSE(AnyContains(p->steps(), "replaces the source's"));
  EXPECT_TRUE(AnyContains(p->steps(), "boot it instead of"));
}

TEST(CustomizationPlanTemplateKernel, TemplateLackingTheDriverIsABlocker) {
  const v1::HardwareProfile source = WithoutNvme(Shape("bios-ahci-e1000"));
  auto p = TemplatePlan(source, &source);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(AnyContains(p->blockers(), "cannot drive it either"));
  EXPECT_FALSE(p->has_template_kernel());
}

// ---- shrinking to a smaller disk (issue 6) ---------------------------------
// bios-ahci-e1000: MBR, sda1 (ext4) from 1 MiB to the end of its 2 GiB disk.
// uefi-ahci-e1000: GPT, sda1 (ESP), sda2 (/boot), sda3 (ext4 root) ending
// 1 MiB before the end of its 2 GiB disk.

v1::HardwareProfile WithDiskBytes(v1::HardwareProfile p, uint64_t bytes) {
  for (auto& d : *p.mutable_disks()) {
    if (!d.removable() && d.size_bytes() > 0) d.set_size_bytes(bytes);
  }
  return p;
}

v1::CustomizationPlan ShrinkPlan(const v1::HardwareProfile& source,
                                 const v1::HardwareProfile& target) {
  auto diff = ProfileDiff(source, target, {});
  EXPECT_TRUE(diff.ok()) << diff.status();
  if (!diff.ok()) return {};
  auto plan = PlanCustomization(source, target, *diff, {});
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : v1::CustomizationPlan();
}

TEST(CustomizationPlanShrink, SmallerDiskShrinksTheLastPartition) {
  v1::CustomizationPlan p = ShrinkPlan(
      Shape("bios-ahci-e1000"),
      WithDiskBytes(Shape("virtio-blk-net"), 3ull << 29));  // 1.5 GiB
  EXPECT_TRUE(p.blockers().empty()) << p.blockers(0);
  EXPECT_EQ(p.source_disk_bytes(), 2ull << 30);
  EXPECT_EQ(p.target_disk_bytes(), 3ull << 29);
  const std::string text = RenderCustomizationPlanText(p);
  EXPECT_THAT(text, HasSubstr("shrink the disk from 2147483648 to 1610612736"));
  EXPECT_THAT(text, HasSubstr("sda1 (ext4)"));
  EXPECT_THAT(text, HasSubstr("to 1609564160 bytes"));  // 1.5 GiB - 1 MiB
  EXPECT_THAT(text, HasSubstr("checked when the build runs"));
  EXPECT_THAT(text, HasSubstr("Ready to build."));
  EXPECT_THAT(text, testing::Not(HasSubstr("GPT")));
  // The shrink comes first, before the drivers.
  ASSERT_FALSE(p.steps().empty());
  EXPECT_THAT(p.steps(0), HasSubstr("shrink the disk"));
  EXPECT_EQ(ValidateCustomizationPlan(p), absl::OkStatus());
  EXPECT_TRUE(PlanChangesAnything(p));
  // Far too small for the data is still not known from the profile: the
  // build refuses it (resize2fs -P).
  p = ShrinkPlan(Shape("bios-ahci-e1000"),
                 WithDiskBytes(Shape("virtio-blk-net"), 512ull << 20));
  EXPECT_TRUE(p.blockers().empty()) << p.blockers(0);
}

TEST(CustomizationPlanShrink, GptKeepsRoomForTheBackupHeader) {
  // uefi-ahci-e1000's root ends 1 MiB before 2 GiB: a disk 512 KiB smaller
  // still holds it unchanged...
  v1::HardwareProfile src = Shape("uefi-ahci-e1000");
  v1::CustomizationPlan p =
      ShrinkPlan(src, WithDiskBytes(src, (2ull << 30) - (512 << 10)));
  EXPECT_TRUE(p.blockers().empty()) << p.blockers(0);
  std::string text = RenderCustomizationPlanText(p);
  EXPECT_THAT(text, HasSubstr("fit unchanged"));
  EXPECT_THAT(text, HasSubstr("GPT backup header moves"));
  // ... one 1 MiB smaller does not: the 33 sectors of the backup header
  // push the aligned end before the root's end, so sda3 shrinks.
  p = ShrinkPlan(src, WithDiskBytes(src, (2ull << 30) - (1 << 20)));
  EXPECT_TRUE(p.blockers().empty()) << p.blockers(0);
  text = RenderCustomizationPlanText(p);
  EXPECT_THAT(text, HasSubstr("the last partition sda3 (ext4)"));
  EXPECT_THAT(text, HasSubstr("GPT backup header moves"));
}

TEST(CustomizationPlanShrink, AnotherPartitionBeyondTheEndIsABlocker) {
  // /boot (sda2) ends at 401 MiB: a 256 MiB disk cannot hold it, and only
  // the last partition shrinks.
  v1::HardwareProfile src = Shape("uefi-ahci-e1000");
  v1::CustomizationPlan p = ShrinkPlan(src, WithDiskBytes(src, 256ull << 20));
  ASSERT_EQ(p.blockers_size(), 1) << RenderCustomizationPlanText(p);
  EXPECT_THAT(p.blockers(0), HasSubstr("partition sda2 ends at byte"));
  EXPECT_THAT(p.blockers(0), HasSubstr("only the last partition (sda3)"));
  EXPECT_EQ(ValidateCustomizationPlan(p).code(),
            absl::StatusCode::kFailedPrecondition);
  // The last partition (from 401 MiB) itself would vanish: 402 MiB less
  // the GPT backup header leaves nothing after 1 MiB alignment.
  p = ShrinkPlan(src, WithDiskBytes(src, 402ull << 20));
  ASSERT_EQ(p.blockers_size(), 1) << RenderCustomizationPlanText(p);
  EXPECT_THAT(p.blockers(0), HasSubstr("last partition sda3 starts at"));
}

TEST(CustomizationPlanShrink, XfsAndOthersAreBlockers) {
  v1::HardwareProfile src = Shape("bios-ahci-e1000");
  src.mutable_disks(0)->mutable_partitions(0)->set_fs_type("xfs");
  v1::CustomizationPlan p =
      ShrinkPlan(src, WithDiskBytes(Shape("virtio-blk-net"), 3ull << 29));
  ASSERT_EQ(p.blockers_size(), 1);
  EXPECT_THAT(p.blockers(0), HasSubstr("xfs, which cannot shrink"));
  src.mutable_disks(0)->mutable_partitions(0)->set_fs_type("btrfs");
  p = ShrinkPlan(src, WithDiskBytes(Shape("virtio-blk-net"), 3ull << 29));
  ASSERT_EQ(p.blockers_size(), 1);
  EXPECT_THAT(p.blockers(0), HasSubstr("ext2/3/4 only"));
  // Without the file system type the build decides.
  src.mutable_disks(0)->mutable_partitions(0)->clear_fs_type();
  p = ShrinkPlan(src, WithDiskBytes(Shape("virtio-blk-net"), 3ull << 29));
  EXPECT_TRUE(p.blockers().empty()) << p.blockers(0);
}

TEST(CustomizationPlanShrink, NoPartitionGeometryLeavesItToTheBuild) {
  v1::HardwareProfile src = Shape("bios-ahci-e1000");
  src.mutable_disks(0)->clear_partitions();
  v1::CustomizationPlan p =
      ShrinkPlan(src, WithDiskBytes(Shape("virtio-blk-net"), 3ull << 29));
  EXPECT_TRUE(p.blockers().empty()) << p.blockers(0);
  EXPECT_THAT(RenderCustomizationPlanText(p),
              HasSubstr("no partition geometry"));
}

}  // namespace
}  // namespace cairn
