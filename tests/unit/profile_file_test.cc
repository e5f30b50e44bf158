// Profile files: binary with header + CRC, JSON, truncation and damage.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/hardware_profile.h"
#include "profile_test_util.h"

namespace cairn {
namespace {

using profile_test::Shape;
using ::testing::HasSubstr;

TEST(HardwareProfileFile, BinaryRoundTrip) {
  const v1::HardwareProfile& p = Shape("bios-ahci-e1000");
  std::string bytes = EncodeHardwareProfileFile(p);
  auto back = ParseHardwareProfile(bytes, "p.hp");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), p.SerializeAsString());
}

TEST(HardwareProfileFile, TruncatedProfileIsDataLoss) {
  std::string bytes = EncodeHardwareProfileFile(Shape("bios-ahci-e1000"));
  for (size_t cut : {size_t{10}, size_t{19}, size_t{20}, size_t{21},
                     bytes.size() / 2, bytes.size() - 1}) {
    auto r = ParseHardwareProfile(bytes.substr(0, cut), "/backups/p.hp");
    EXPECT_TRUE(absl::IsDataLoss(r.status())) << cut << ": " << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("/backups/p.hp"));
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("truncated"));
  }
}

TEST(HardwareProfileFile, DamagedProfileIsDataLoss) {
  std::string bytes = EncodeHardwareProfileFile(Shape("bios-ahci-e1000"));
  bytes[bytes.size() / 2] ^= 0x40;
  auto r = ParseHardwareProfile(bytes, "p.hp");
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("CRC32C"));
  auto extra = ParseHardwareProfile(
      EncodeHardwareProfileFile(Shape("bios-ahci-e1000")) + "x", "p.hp");
  EXPECT_TRUE(absl::IsDataLoss(extra.status()));
}

TEST(HardwareProfileFile, NotAProfile) {
  EXPECT_TRUE(
      absl::IsInvalidArgument(ParseHardwareProfile("hello", "x").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseHardwareProfile("", "x").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ParseHardwareProfile("{\"nope\": 1}", "x").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ParseHardwareProfile("{\"format_version\": 1", "x").status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(ParseHardwareProfile("{}", "x").status()));
  v1::HardwareProfile future;
  future.set_format_version(99);
  auto r = ParseHardwareProfile(EncodeHardwareProfileFile(future), "x");
  EXPECT_TRUE(absl::IsInvalidArgument(r.status()));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("newer"));
}

TEST(HardwareProfileFile, JsonRoundTripAndSummary) {
  const v1::HardwareProfile& p = Shape("uefi-nvme");
  auto full = HardwareProfileToJson(p, true);
  ASSERT_TRUE(full.ok());
  auto back = ParseHardwareProfile(*full, "p.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), p.SerializeAsString());
  auto summary = HardwareProfileToJson(p, false);
  ASSERT_TRUE(summary.ok());
  nlohmann::json j = nlohmann::json::parse(*summary);
  EXPECT_EQ(j["firmware"]["mode"], "FIRMWARE_MODE_UEFI");
  EXPECT_EQ(j["disks"][0]["name"], "nvme0n1");
  EXPECT_FALSE(j["kernels"][0].contains("module_index"));
  EXPECT_GT(j["kernels"][0]["module_index_bytes"].get<uint64_t>(), 1000000u);
}

}  // namespace
}  // namespace cairn
