// The offline hardware-profile collector (agent/offline_profile_collector.h)
// on the cached Debian fixture images (docs/testing-fixtures.md). Each test
// launches one libguestfs appliance (20-25 s under TCG), so each image is
// checked by a single test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>

#include "agent/offline_profile_collector.h"
#include "agent/profile_collector.h"
#include "fixture_images.h"
#include "server/profile_diff.h"

namespace cairn {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

class OfflineProfileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("LIBGUESTFS_BACKEND", "direct", /*overwrite=*/0);
    setenv("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg", /*overwrite=*/0);
  }

  static StatusOr<v1::HardwareProfile> Collect(const std::string& path) {
    auto t0 = std::chrono::steady_clock::now();
    OfflineCollectOptions o;
    o.format = "raw";
    auto p = CollectOfflineProfile(path, o);
    auto s = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::steady_clock::now() - t0)
                 .count();
    std::fprintf(stderr, "offline collection of %s: %lld s\n", path.c_str(),
                 static_cast<long long>(s));
    return p;
  }
};

const v1::InstalledKernel* FindKernel(const v1::HardwareProfile& p,
                                      const std::string& version) {
  for (const auto& k : p.kernels())
    if (k.version() == version) return &k;
  return nullptr;
}

const v1::InterfaceConfig* FindIface(const v1::HardwareProfile& p,
                                     const std::string& name) {
  for (const auto& c : p.network().interfaces())
    if (c.name() == name && c.method() == "static") return &c;
  return nullptr;
}

bool HasMountPoint(const v1::HardwareProfile& p, const std::string& mp) {
  return std::any_of(p.fstab().begin(), p.fstab().end(),
                     [&](const auto& e) { return e.mount_point() == mp; });
}

TEST_F(OfflineProfileTest, DebianBiosAhciImage) {
  auto img = fixtures::LoadFixtureImage(fixtures::kDebianBiosAhci);
  ASSERT_TRUE(img.ok()) << img.status();
  auto p = Collect(img->path);
  ASSERT_TRUE(p.ok()) << p.status();

  EXPECT_EQ(p->collected_from(), "image:" + img->path);
  EXPECT_EQ(p->firmware().mode(), v1::FIRMWARE_MODE_BIOS);
  EXPECT_EQ(p->firmware().secure_boot(), v1::SECURE_BOOT_NOT_APPLICABLE);
  EXPECT_EQ(p->os().id(), "debian");
  EXPECT_EQ(p->network().hostname(), img->hostname);
  // Hardware is unknown offline.
  EXPECT_EQ(p->pci_devices_size(), 0);
  EXPECT_EQ(p->nics_size(), 0);
  EXPECT_TRUE(p->running_kernel().empty());
  EXPECT_FALSE(p->has_cpu());

  ASSERT_EQ(p->disks_size(), 1);
  EXPECT_EQ(p->disks(0).size_bytes(), img->size_bytes);
  EXPECT_EQ(p->disks(0).partition_table_type(), "dos");
  ASSERT_GE(p->disks(0).partitions_size(), 1);
  bool root_part = false;
  for (const auto& pt : p->disks(0).partitions())
    if (pt.fs_uuid() == img->root_uuid) root_part = pt.fs_type() == "ext4";
  EXPECT_TRUE(root_part) << "no ext4 partition with UUID " << img->root_uuid;

  const v1::InstalledKernel* k = FindKernel(*p, img->kernel_version);
  ASSERT_NE(k, nullptr) << "kernel " << img->kernel_version;
  EXPECT_EQ(k->image_path(), "/boot/vmlinuz-" + img->kernel_version);
  EXPECT_TRUE(k->module_tree_present());
  EXPECT_GT(k->loadable_module_count(), 1000u);
  EXPECT_THAT(k->module_index().modules_alias(), HasSubstr("ahci"));
  EXPECT_THAT(k->module_index().modules_alias(), HasSubstr("virtio_blk"));
  EXPECT_FALSE(k->module_index().modules_dep().empty());
  EXPECT_FALSE(k->module_index().modules_builtin().empty());
  ASSERT_TRUE(k->has_initramfs());
  EXPECT_EQ(k->initramfs().path(), "/boot/initrd.img-" + img->kernel_version);
  EXPECT_THAT(k->initramfs().modules(), Contains("ahci"));
  EXPECT_THAT(k->initramfs().modules(), Contains("sd_mod"));
  EXPECT_THAT(k->initramfs().modules(), ::testing::Not(Contains("virtio_blk")));

  EXPECT_TRUE(HasMountPoint(*p, "/"));
  const v1::InterfaceConfig* nic = FindIface(*p, img->nic_name);
  ASSERT_NE(nic, nullptr) << "no static stanza for " << img->nic_name;
  EXPECT_EQ(nic->system(), "ifupdown");
  EXPECT_THAT(nic->addresses(), Contains(img->static_address));
  EXPECT_EQ(nic->gateway(), "192.0.2.1");

  for (const std::string& tool : img->hypervisor_tools) {
    EXPECT_TRUE(std::any_of(p->hypervisor_software().begin(),
                            p->hypervisor_software().end(),
                            [&](const auto& h) { return h.package() == tool; }))
        << tool;
  }
  EXPECT_EQ(p->boot_loader().name(), "grub-pc");

  // Restoring this image onto the recorded virtio-blk/virtio-net machine:
  // virtio_blk is in the kernel's tree but not its initramfs.
  CollectOptions live;
  live.root = std::string(CAIRN_PROFILE_DATA_DIR) + "/virtio-blk-net";
  auto target = CollectHardwareProfile(live);
  ASSERT_TRUE(target.ok()) << target.status();
  auto plan = ProfileDiff(*p, *target, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->source_kernel(), img->kernel_version);
  bool add_virtio_blk = false;
  for (const auto& m : plan->modules()) {
    if (m.module() == "virtio_blk") {
      add_virtio_blk = m.placement() == v1::MODULE_PLACEMENT_ADD_TO_INITRAMFS &&
                       m.boot_critical();
    }
  }
  EXPECT_TRUE(add_virtio_blk) << RenderProfileDiffText(*plan);
}

TEST_F(OfflineProfileTest, DebianUefiGptImage) {
  auto img = fixtures::LoadFixtureImage(fixtures::kDebianUefiGpt);
  ASSERT_TRUE(img.ok()) << img.status();
  auto p = Collect(img->path);
  ASSERT_TRUE(p.ok()) << p.status();

  EXPECT_EQ(p->firmware().mode(), v1::FIRMWARE_MODE_UEFI);
  EXPECT_EQ(p->firmware().secure_boot(), v1::SECURE_BOOT_UNKNOWN);
  ASSERT_EQ(p->disks_size(), 1);
  EXPECT_EQ(p->disks(0).partition_table_type(), "gpt");
  EXPECT_FALSE(p->disks(0).partition_table_uuid().empty());
  bool esp = false;
  for (const auto& pt : p->disks(0).partitions()) {
    if (pt.part_type() == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b") {
      esp = true;
      EXPECT_EQ(pt.fs_type(), "vfat");
    }
  }
  EXPECT_TRUE(esp);

  const v1::InstalledKernel* k = FindKernel(*p, img->kernel_version);
  ASSERT_NE(k, nullptr) << "kernel " << img->kernel_version;
  EXPECT_THAT(k->module_index().modules_alias(), HasSubstr("nvme"));
  ASSERT_TRUE(k->has_initramfs());
  for (const std::string& m : img->initramfs_modules) {
    EXPECT_THAT(k->initramfs().modules(), Contains(m));
  }

  EXPECT_TRUE(HasMountPoint(*p, "/"));
  EXPECT_TRUE(HasMountPoint(*p, "/boot/efi"));
  const v1::InterfaceConfig* nic = FindIface(*p, img->nic_name);
  ASSERT_NE(nic, nullptr);
  EXPECT_THAT(nic->addresses(), Contains(img->static_address));
  EXPECT_FALSE(p->boot_loader().efi_binaries().empty());
}

TEST_F(OfflineProfileTest, ImageOfZerosHasNoOperatingSystem) {
  std::string dir = ::testing::TempDir() + "/cairn-offline-zeros-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  std::string path = dir + "/zeros.raw";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(ftruncate(fileno(f), 64 << 20), 0);
  std::fclose(f);
  auto p = Collect(path);
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(p.status())) << p.status();
  EXPECT_THAT(std::string(p.status().message()),
              HasSubstr("no operating system found"));
  EXPECT_THAT(std::string(p.status().message()), HasSubstr(path));
}

TEST_F(OfflineProfileTest, MissingImageIsNotFound) {
  auto p = CollectOfflineProfile("/nonexistent/cairn/disk.raw", {});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsNotFound(p.status())) << p.status();
  EXPECT_THAT(std::string(p.status().message()),
              HasSubstr("/nonexistent/cairn/disk.raw"));
}

}  // namespace
}  // namespace cairn
