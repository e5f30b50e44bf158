// End-to-end boot checks on the cached Debian fixtures (TCG, one QEMU at a
// time). Proves the fixtures are honest about their hardware assumptions:
//   - debian-bios-ahci reaches its marker on AHCI under SeaBIOS,
//   - the same image on virtio-blk does not: its AHCI-only initramfs gives up
//     on the root device (the boot check stops as soon as that shows),
//   - debian-uefi-gpt reaches its marker under OVMF.
// Each test prints its boot time; on failure it prints the serial log tail.
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "boot_check.h"
#include "fixture_images.h"
#include "gtest/gtest.h"

namespace cairn::boot {
namespace {

using fixtures::FixtureImage;
using fixtures::LoadFixtureImage;

BootRequest RequestFor(const FixtureImage& img) {
  BootRequest req;
  req.disk_path = img.path;
  req.disk_format = "raw";
  req.marker = img.marker;
  req.hardware.mac = img.source_mac;
  req.hardware.firmware =
      img.firmware == "uefi" ? Firmware::kUefi : Firmware::kBios;
  req.timeout = absl::Seconds(240);
  return req;
}

std::string Describe(const BootResult& r) {
  return absl::StrCat("outcome=", std::string(BootOutcomeName(r.outcome)),
                      " after ", absl::FormatDuration(r.elapsed),
                      "\nevidence: ", r.evidence,
                      "\nserial log: ", r.serial_log_path,
                      "\n--- serial tail ---\n", r.SerialTail(40));
}

void Report(const char* what, const BootResult& r) {
  std::printf(
      "[boot] %s: %s in %.1f s (kernel banner at %.1f s; kernel %s, "
      "ipv4 %s)\n",
      what, std::string(BootOutcomeName(r.outcome)).c_str(),
      absl::ToDoubleSeconds(r.elapsed),
      r.kernel_started_after.has_value()
          ? absl::ToDoubleSeconds(*r.kernel_started_after)
          : -1.0,
      r.guest_info.count("kernel") ? r.guest_info.at("kernel").c_str() : "-",
      r.guest_info.count("ipv4") ? r.guest_info.at("ipv4").c_str() : "-");
  ::testing::Test::RecordProperty(
      "boot_seconds", absl::StrCat(absl::ToDoubleSeconds(r.elapsed)));
}

// Keeps a boot's work directory (serial log, firmware log) only when the
// test failed, so passing runs leave nothing behind in $TMPDIR.
class BootFixtures : public ::testing::Test {
 protected:
  void TearDown() override {
    if (work_dir_.empty()) return;
    if (HasFailure()) {
      std::printf("[boot] logs kept in %s\n", work_dir_.c_str());
    } else {
      std::error_code ec;
      std::filesystem::remove_all(work_dir_, ec);
    }
  }
  absl::StatusOr<BootResult> Boot(const BootRequest& req) {
    absl::StatusOr<BootResult> r = BootCheck(req);
    if (r.ok()) work_dir_ = r->work_dir;
    return r;
  }
  std::string work_dir_;
};

TEST_F(BootFixtures, BiosAhciReachesMarkerOnAhci) {
  absl::StatusOr<FixtureImage> img =
      LoadFixtureImage(fixtures::kDebianBiosAhci);
  ASSERT_TRUE(img.ok()) << img.status();
  BootRequest req = RequestFor(*img);
  req.hardware.disk_bus = DiskBus::kAhci;
  req.hardware.nic = NicModel::kE1000;
  // A bigger disk than the image: the guest must see the requested size.
  req.hardware.disk_size_bytes = uint64_t{3} << 30;
  absl::StatusOr<BootResult> r = Boot(req);
  ASSERT_TRUE(r.ok()) << r.status();
  Report("debian-bios-ahci on ahci/bios (3 GiB disk)", *r);
  ASSERT_EQ(r->outcome, BootOutcome::kMarkerReached) << Describe(*r);
  EXPECT_EQ(r->guest_info["kernel"], img->kernel_version);
  EXPECT_EQ(r->guest_info["firmware"], "bios");
  EXPECT_EQ(r->guest_info["root_disk"], "sda");
  EXPECT_EQ(r->guest_info["disk_bytes"], absl::StrCat(uint64_t{3} << 30));
  // The static address came up on the NIC name the image was built for.
  EXPECT_EQ(r->guest_info["ipv4"],
            absl::StrCat(img->nic_name, "=", img->static_address));
}

TEST_F(BootFixtures, BiosAhciIsStuckInInitramfsOnVirtioBlk) {
  absl::StatusOr<FixtureImage> img =
      LoadFixtureImage(fixtures::kDebianBiosAhci);
  ASSERT_TRUE(img.ok()) << img.status();
  BootRequest req = RequestFor(*img);
  req.hardware.disk_bus = DiskBus::kVirtioBlk;
  req.hardware.nic = NicModel::kVirtioNet;
  // Boot to initramfs (~15 s) + its 30 s root wait, with headroom.
  req.timeout = absl::Seconds(180);
  absl::StatusOr<BootResult> r = Boot(req);
  ASSERT_TRUE(r.ok()) << r.status();
  Report("debian-bios-ahci on virtio-blk/bios", *r);
  EXPECT_TRUE(r->kernel_started) << Describe(*r);
  ASSERT_EQ(r->outcome, BootOutcome::kStuckInInitramfs) << Describe(*r);
}

TEST_F(BootFixtures, UefiGptReachesMarkerUnderOvmf) {
  absl::StatusOr<FixtureImage> img = LoadFixtureImage(fixtures::kDebianUefiGpt);
  ASSERT_TRUE(img.ok()) << img.status();
  BootRequest req = RequestFor(*img);
  req.hardware.firmware = Firmware::kUefi;
  req.hardware.disk_bus = DiskBus::kAhci;
  req.hardware.nic = NicModel::kE1000;
  absl::StatusOr<BootResult> r = Boot(req);
  ASSERT_TRUE(r.ok()) << r.status();
  Report("debian-uefi-gpt on ahci/uefi", *r);
  ASSERT_EQ(r->outcome, BootOutcome::kMarkerReached) << Describe(*r);
  EXPECT_EQ(r->guest_info["firmware"], "uefi");
  EXPECT_EQ(r->guest_info["kernel"], img->kernel_version);
}

}  // namespace
}  // namespace cairn::boot
