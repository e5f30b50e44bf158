// ReadInitramfs: the recorded skeleton initramfs, concatenated early +
// compressed archives built here with libarchive, and damaged input.
#include <archive.h>
#include <archive_entry.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/initramfs_reader.h"
#include "profile_test_util.h"

namespace cairn {
namespace {

using profile_test::ScratchDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A newc cpio archive of `files` (path -> contents), optionally compressed
// with `filter` ("gzip", "xz", "zstd" or "" for none).
std::string MakeCpio(
    const std::vector<std::pair<std::string, std::string>>& files,
    const std::string& filter) {
  struct archive* a = archive_write_new();
  archive_write_set_format_cpio_newc(a);
  if (filter == "gzip") archive_write_add_filter_gzip(a);
  if (filter == "xz") archive_write_add_filter_xz(a);
  if (filter == "zstd") archive_write_add_filter_zstd(a);
  archive_write_set_bytes_in_last_block(a, 1);
  std::vector<char> buf(1 << 20);
  size_t used = 0;
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  for (const auto& [path, data] : files) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

TEST(InitramfsReader, RecordedSkeletonOfTheAhciOnlyInitramfs) {
  std::string dir = profile_test::ShapeRoot("bios-ahci-e1000") + "/boot";
  std::string path;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("initrd.img-", 0) == 0)
      path = e.path();
  }
  ASSERT_FALSE(path.empty());
  auto r = ReadInitramfs(path, path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->segments, ElementsAre("cpio+zstd"));
  EXPECT_THAT(r->modules,
              testing::IsSupersetOf({"ahci", "libahci", "libata", "sd_mod",
                                     "scsi_mod", "ext4", "jbd2"}));
  EXPECT_THAT(r->modules, testing::Not(testing::Contains("virtio_blk")));
  EXPECT_GT(r->members.size(), 100u);
}

TEST(InitramfsReader, EarlyMicrocodeThenCompressedMain) {
  ScratchDir d;
  std::string early =
      MakeCpio({{"kernel/x86/microcode/GenuineIntel.bin", "ucode"}}, "");
  std::string main = MakeCpio(
      {{"usr/lib/modules/6.1.0-9-amd64/kernel/drivers/block/virtio_blk.ko",
        "x"},
       {"usr/lib/modules/6.1.0-9-amd64/kernel/drivers/nvme/host/"
        "nvme-core.ko.xz",
        "y"},
       {"init", "#!/bin/sh"}},
      "gzip");
  // initramfs-tools pads between segments with zeros; the kernel skips them.
  d.Write("initrd", early + std::string(512 - early.size() % 512, '\0') + main);
  auto r = ReadInitramfs(d.path() + "/initrd", "/boot/initrd");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->segments, ElementsAre("cpio", "cpio+gzip"));
  EXPECT_THAT(r->modules, ElementsAre("nvme_core", "virtio_blk"));
  EXPECT_THAT(r->members,
              testing::Contains("kernel/x86/microcode/GenuineIntel.bin"));
}

TEST(InitramfsReader, XzAndZstdMainArchives) {
  for (const char* filter : {"xz", "zstd"}) {
    ScratchDir d;
    d.Write("initrd", MakeCpio({{"lib/modules/k/ahci.ko", "a"}}, filter));
    auto r = ReadInitramfs(d.path() + "/initrd", "initrd");
    ASSERT_TRUE(r.ok()) << filter << ": " << r.status();
    EXPECT_THAT(r->segments, ElementsAre(std::string("cpio+") + filter));
    EXPECT_THAT(r->modules, ElementsAre("ahci"));
  }
}

TEST(InitramfsReader, TruncatedInputIsDataLossNamingTheFile) {
  std::string early = MakeCpio(
      {{"kernel/x86/microcode/AuthenticAMD.bin", std::string(3000, 'u')}}, "");
  std::string main =
      MakeCpio({{"lib/modules/k/ahci.ko", std::string(100000, 'a')}}, "gzip");
  std::string whole = early + main;
  for (size_t cut : {size_t{50}, size_t{200}, early.size() - 10,
                     early.size() + 30, whole.size() - 100}) {
    ScratchDir d;
    d.Write("initrd", whole.substr(0, cut));
    auto r = ReadInitramfs(d.path() + "/initrd", "/boot/initrd.img-x");
    EXPECT_TRUE(absl::IsDataLoss(r.status()))
        << "cut " << cut << ": " << r.status();
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("/boot/initrd.img-x"));
  }
}

TEST(InitramfsReader, GarbageAndHostileHeaders) {
  ScratchDir d;
  d.Write("garbage", "hello, this is no initramfs");
  auto g = ReadInitramfs(d.path() + "/garbage", "garbage");
  EXPECT_TRUE(absl::IsDataLoss(g.status())) << g.status();
  // A newc header announcing a 4 GiB member in a tiny file.
  std::string h = "070701";
  for (int i = 0; i < 13; ++i)
    h += i == 6 ? "FFFFFFF0" : (i == 11 ? "00000002" : "00000000");
  d.Write("huge", h + "a" + std::string(1, '\0') + "xx");
  auto r = ReadInitramfs(d.path() + "/huge", "huge");
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  // Non-hex header fields.
  std::string bad = "070701" + std::string(104, 'Z');
  d.Write("badhex", bad);
  auto b = ReadInitramfs(d.path() + "/badhex", "badhex");
  EXPECT_TRUE(absl::IsDataLoss(b.status())) << b.status();
  EXPECT_TRUE(
      absl::IsNotFound(ReadInitramfs(d.path() + "/none", "none").status()));
}

}  // namespace
}  // namespace cairn
