// ModuleIndex: modalias matching against the recorded kernel's indices,
// with the text backend and libkmod agreeing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/module_index.h"
#include "profile_test_util.h"

namespace cairn {
namespace {

using profile_test::Shape;
using profile_test::ShapeRoot;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ModuleDir() {
  const auto& p = Shape("bios-ahci-e1000");
  return ShapeRoot("bios-ahci-e1000") + "/usr/lib/modules/" +
         p.running_kernel();
}

std::unique_ptr<ModuleIndex> FileIndex() {
  auto idx =
      ModuleIndexFromFiles(Shape("bios-ahci-e1000").kernels(0).module_index());
  EXPECT_TRUE(idx.ok()) << idx.status();
  return idx.ok() ? std::move(*idx) : nullptr;
}

std::vector<std::string> Names(const std::vector<KernelModule>& v) {
  std::vector<std::string> out;
  for (const auto& m : v) out.push_back(m.name);
  return out;
}

TEST(ModuleIndex, MatchesRealModaliases) {
  auto idx = FileIndex();
  ASSERT_NE(idx, nullptr);
  auto e1000 =
      idx->Lookup("pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00");
  ASSERT_TRUE(e1000.ok());
  EXPECT_THAT(Names(*e1000), ElementsAre("e1000"));
  EXPECT_EQ(e1000->front().path,
            "kernel/drivers/net/ethernet/intel/e1000/e1000.ko");
  EXPECT_FALSE(e1000->front().builtin);
  auto blk = idx->Lookup("virtio:d00000002v00001AF4");
  ASSERT_TRUE(blk.ok());
  EXPECT_THAT(Names(*blk), ElementsAre("virtio_blk"));
  auto lun = idx->Lookup("scsi:t-0x00");
  ASSERT_TRUE(lun.ok());
  EXPECT_THAT(Names(*lun), testing::Contains("sd_mod"));
  auto none =
      idx->Lookup("pci:v0000ABCDd0000EF01sv00000000sd00000000bc08sc80i00");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(ModuleIndex, DependenciesInLoadOrder) {
  auto idx = FileIndex();
  ASSERT_NE(idx, nullptr);
  auto deps = idx->Dependencies("virtio_blk");
  ASSERT_TRUE(deps.ok());
  EXPECT_THAT(*deps, ElementsAre("virtio", "virtio_ring"));
  auto nvme = idx->Dependencies("nvme");
  ASSERT_TRUE(nvme.ok());
  EXPECT_EQ(nvme->back(), "nvme_core");
  EXPECT_TRUE(absl::IsNotFound(idx->Dependencies("no_such_module").status()));
}

TEST(ModuleIndex, BuiltinModulesFromModinfoAliases) {
  auto idx = FileIndex();
  ASSERT_NE(idx, nullptr);
  auto dh = idx->Lookup("crypto-dh");
  ASSERT_TRUE(dh.ok());
  ASSERT_EQ(dh->size(), 1u);
  EXPECT_EQ(dh->front().name, "dh_generic");
  EXPECT_TRUE(dh->front().builtin);
  EXPECT_TRUE(dh->front().path.empty());
}

TEST(ModuleIndex, ModaliasWithGlobCharactersIsRefused) {
  auto idx = FileIndex();
  ASSERT_NE(idx, nullptr);
  for (const char* bad :
       {"pci:*", "*", "virtio:d0000000?v00001AF4", "pci:[v]", "pci:v\\*"}) {
    auto r = idx->Lookup(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << bad;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("glob")) << bad;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(idx->Lookup("").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(idx->Lookup("pci:\n").status()));
}

TEST(ModuleIndex, LibkmodAgreesWithRecordedIndices) {
  auto files = FileIndex();
  ASSERT_NE(files, nullptr);
  profile_test::ScratchDir scratch;
  auto kmod = ModuleIndexFromKmod(profile_test::MakeModuleTree(
      scratch, "bios-ahci-e1000", Shape("bios-ahci-e1000").running_kernel()));
  ASSERT_TRUE(kmod.ok()) << kmod.status();
  EXPECT_THAT((*kmod)->Backend(), HasSubstr("libkmod:"));
  size_t compared = 0;
  for (const char* shape :
       {"bios-ahci-e1000", "virtio-blk-net", "virtio-scsi", "uefi-nvme"}) {
    for (const auto& pci : Shape(shape).pci_devices()) {
      std::vector<std::string> aliases = {pci.modalias()};
      for (const auto& c : pci.children()) aliases.push_back(c.modalias());
      for (const auto& a : aliases) {
        if (a.empty()) continue;
        auto x = files->Lookup(a);
        auto y = (*kmod)->Lookup(a);
        ASSERT_TRUE(x.ok() && y.ok()) << a;
        EXPECT_EQ(Names(*x), Names(*y)) << a;
        for (const auto& m : *x) {
          auto dx = files->Dependencies(m.name);
          auto dy = (*kmod)->Dependencies(m.name);
          ASSERT_TRUE(dx.ok() && dy.ok()) << m.name;
          EXPECT_EQ(*dx, *dy) << m.name;
        }
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 20u);
  auto dh = (*kmod)->Lookup("crypto-dh");
  ASSERT_TRUE(dh.ok());
  ASSERT_EQ(dh->size(), 1u);
  EXPECT_TRUE(dh->front().builtin);
  EXPECT_TRUE(absl::IsInvalidArgument((*kmod)->Lookup("pci:*").status()));
}

TEST(ModuleIndex, LibkmodRefusesATreeWithoutModuleFiles) {
  // The recorded tree has the indices but no .ko files.
  auto kmod = ModuleIndexFromKmod(ModuleDir());
  ASSERT_TRUE(kmod.ok()) << kmod.status();
  auto blk = (*kmod)->Lookup("virtio:d00000002v00001AF4");
  ASSERT_TRUE(blk.ok());
  EXPECT_EQ(blk->size(), 1u);
  auto deps = (*kmod)->Dependencies("virtio_blk");
  EXPECT_TRUE(absl::IsFailedPrecondition(deps.status())) << deps.status();
  EXPECT_THAT(std::string(deps.status().message()),
              HasSubstr("virtio_blk.ko is missing"));
}

TEST(ModuleIndex, MissingIndicesAreAPreconditionError) {
  EXPECT_TRUE(absl::IsFailedPrecondition(
      ModuleIndexFromFiles(v1::ModuleIndexFiles()).status()));
  EXPECT_TRUE(
      absl::IsFailedPrecondition(ModuleIndexFromKmod("/nonexistent").status()));
  v1::ModuleIndexFiles bad;
  bad.set_modules_dep("kernel/a.ko: \n");
  bad.set_modules_alias("garbage line\n");
  auto r = ModuleIndexFromFiles(bad);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status()));
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("modules.alias line 1"));
}

TEST(ModuleIndex, NormalizeModuleName) {
  EXPECT_EQ(NormalizeModuleName("kernel/drivers/ata/ahci.ko"), "ahci");
  EXPECT_EQ(NormalizeModuleName("usr/lib/modules/x/crc32c-intel.ko.zst"),
            "crc32c_intel");
  EXPECT_EQ(NormalizeModuleName("virtio-pci"), "virtio_pci");
}

}  // namespace
}  // namespace cairn
