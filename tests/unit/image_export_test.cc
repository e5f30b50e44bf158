// Unit tests of ImageExport (media_agent/image_export.h): formats, the
// qemu-img argument vector and progress parsing, the refusals (checked
// before anything starts, nothing left behind), and real exports of a small
// encrypted backup through nbdkit and qemu-img (skipped when nbdkit,
// qemu-img or the plugin is not available).
#include "media_agent/image_export.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "absl/time/time.h"
#include "common/data_key.h"
#include "common/subprocess.h"
#include "media_agent/nbd_export.h"
#include "tests/testing/test_util.h"
#include "tests/unit/repo_fixture.h"

namespace cairn {
namespace {

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool ToolRuns(const std::string& tool) {
  auto r = RunCommand({tool, "--version"}, absl::Seconds(30));
  return r.ok() && r->exit_code == 0;
}

TEST(ImageFormatTest, ParsesTheFourFormats) {
  for (const char* name : {"raw", "qcow2", "vmdk", "vhdx"}) {
    auto f = ParseImageFormat(name);
    ASSERT_TRUE(f.ok()) << name;
    EXPECT_EQ(ImageFormatName(*f), name);
  }
  EXPECT_EQ(QemuImgCreateOptions(ImageFormat::kRaw), "");
  EXPECT_EQ(QemuImgCreateOptions(ImageFormat::kQcow2), "compat=1.1");
  EXPECT_EQ(QemuImgCreateOptions(ImageFormat::kVmdk),
            "subformat=streamOptimized");
  EXPECT_EQ(QemuImgCreateOptions(ImageFormat::kVhdx), "subformat=dynamic");
  for (const char* bad : {"", "QCOW2", "vhd", "vpc", "qcow", "raw "}) {
    auto f = ParseImageFormat(bad);
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseImageFormat("vdi").status().message().find("qcow2"),
            absl::string_view::npos);
}

TEST(ImageFormatTest, QemuImgArgv) {
  auto argv = BuildQemuImgConvertArgv("", ImageFormat::kVmdk,
                                      "nbd+unix:///?socket=/r/nbd.sock",
                                      "/out/.d.vmdk.cairn-export-abcdef");
  EXPECT_EQ(argv,
            (std::vector<std::string>{
                "qemu-img", "convert", "-p", "-f", "raw", "-O", "vmdk", "-o",
                "subformat=streamOptimized", "nbd+unix:///?socket=/r/nbd.sock",
                "/out/.d.vmdk.cairn-export-abcdef"}));
  argv = BuildQemuImgConvertArgv("/usr/bin/qemu-img", ImageFormat::kRaw, "u",
                                 "/t");
  EXPECT_EQ(argv,
            (std::vector<std::string>{"/usr/bin/qemu-img", "convert", "-p",
                                      "-f", "raw", "-O", "raw", "u", "/t"}));
  EXPECT_EQ(ExportTempPrefix("disk.qcow2"), ".disk.qcow2.cairn-export-");
}

TEST(ImageFormatTest, ParsesQemuImgProgress) {
  EXPECT_FALSE(ParseQemuImgProgress("").has_value());
  EXPECT_FALSE(ParseQemuImgProgress("    (1").has_value());
  EXPECT_EQ(*ParseQemuImgProgress("    (0.00/100%)\r"), 0.0);
  EXPECT_EQ(*ParseQemuImgProgress(
                "    (0.00/100%)\r    (1.01/100%)\r    (42.50/100%)\r"),
            42.5);
  // A line being written is ignored: the last complete one counts.
  EXPECT_EQ(*ParseQemuImgProgress("    (42.50/100%)\r    (43.5"), 42.5);
  EXPECT_EQ(*ParseQemuImgProgress("    (100.00/100%)\r\n"), 100.0);
  EXPECT_FALSE(ParseQemuImgProgress("(x/100%)").has_value());
}

class ImageExportTest : public RepoFixture {
 protected:
  void SetUp() override {
    RepoFixture::SetUp();
    key_ = std::make_unique<DataKey>(DataKey::Generate());
    // 1 MiB of data, 1 MiB of zeros, 256 KiB of data.
    image_ = testing::PseudoRandomBytes(1 << 20, 7) +
             std::string(1 << 20, '\0') + testing::TextLikeBytes(256 << 10, 9);
    BackupData("b1", image_, "", key_.get());
    out_dir_ = dir_.Sub("out");
    ASSERT_EQ(::mkdir(out_dir_.c_str(), 0755), 0);
  }

  ImageExportOptions Options(const std::string& format,
                             const std::string& name) {
    ImageExportOptions o;
    o.backup_id = "b1";
    o.format = format;
    o.destination = out_dir_ + "/" + name;
    o.key = key_.get();
    o.work_parent = dir_.path();
    return o;
  }

  // nbdkit, qemu-img and the plugin are needed for a real export.
  bool CanExport() {
    return ToolRuns("nbdkit") && ToolRuns("qemu-img") && FindNbdPlugin().ok();
  }

  std::unique_ptr<DataKey> key_;
  std::string image_;
  std::string out_dir_;
};

TEST_F(ImageExportTest, RefusesBeforeStartingAnything) {
  ImageExportOptions o = Options("vhd", "disk.vhd");
  EXPECT_EQ(ExportImage(*repo_, o).status().code(),
            absl::StatusCode::kInvalidArgument);

  o = Options("raw", "disk.raw");
  o.backup_id = "../b1";
  EXPECT_EQ(ExportImage(*repo_, o).status().code(),
            absl::StatusCode::kInvalidArgument);

  o = Options("raw", "");
  o.destination = "";
  EXPECT_EQ(ExportImage(*repo_, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.destination = out_dir_;  // a directory
  EXPECT_EQ(ExportImage(*repo_, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.overwrite = true;
  EXPECT_EQ(ExportImage(*repo_, o).status().code(),
            absl::StatusCode::kInvalidArgument);

  o = Options("raw", "nosuchdir/disk.raw");
  EXPECT_EQ(ExportImage(*repo_, o).status().code(),
            absl::StatusCode::kNotFound);

  testing::WriteFileOrDie(out_dir_ + "/taken.raw", "precious");
  o = Options("raw", "taken.raw");
  Status s = ExportImage(*repo_, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_EQ(testing::ReadFileOrDie(out_dir_ + "/taken.raw"), "precious");

  o = Options("raw", "x.raw");
  o.backup_id = "nosuch";
  EXPECT_EQ(ExportImage(*repo_, o).status().code(),
            absl::StatusCode::kNotFound);

  o = Options("raw", "x.raw");
  o.key = nullptr;
  s = ExportImage(*repo_, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;

  DataKey other = DataKey::Generate();
  o.key = &other;
  EXPECT_EQ(ExportImage(*repo_, o).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Nothing left behind: no temporary image, no work directory.
  EXPECT_EQ(ListDir(out_dir_), std::vector<std::string>{"taken.raw"});
  for (const std::string& n : ListDir(dir_.path())) {
    EXPECT_EQ(n.find("cairn-export-"), std::string::npos) << n;
  }
}

TEST_F(ImageExportTest, ExportsEveryFormat) {
  if (!CanExport()) GTEST_SKIP() << "nbdkit, qemu-img or the plugin missing";
  const std::string original = dir_.Sub("img-b1");
  for (const char* format : {"raw", "qcow2", "vmdk", "vhdx"}) {
    SCOPED_TRACE(format);
    std::string name = std::string("disk.") + format;
    ImageExportOptions o = Options(format, name);
    uint64_t last_done = 0, last_total = 0;
    int calls = 0;
    o.progress = [&](uint64_t done, uint64_t total) {
      EXPECT_GE(done, last_done);
      last_done = done;
      last_total = total;
      ++calls;
    };
    auto r = ExportImage(*repo_, o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->destination, out_dir_ + "/" + name);
    EXPECT_EQ(r->virtual_size, image_.size());
    EXPECT_GT(r->file_size, 0u);
    EXPECT_GT(r->seconds, 0);
    EXPECT_GE(calls, 2);
    EXPECT_EQ(last_done, image_.size());
    EXPECT_EQ(last_total, image_.size());
    struct stat st;
    ASSERT_EQ(::stat(r->destination.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto cmp = RunCommand({"qemu-img", "compare", "-f", format, "-F", "raw",
                           r->destination, original},
                          absl::Seconds(60));
    ASSERT_TRUE(cmp.ok());
    EXPECT_EQ(cmp->exit_code, 0) << cmp->output;
    auto info =
        RunCommand({"qemu-img", "info", r->destination}, absl::Seconds(60));
    ASSERT_TRUE(info.ok());
    EXPECT_NE(info->output.find(std::string("file format: ") + format),
              std::string::npos)
        << info->output;
    if (std::string(format) == "vmdk") {
      EXPECT_NE(info->output.find("create type: streamOptimized"),
                std::string::npos)
          << info->output;
    }
    if (std::string(format) == "qcow2") {
      EXPECT_NE(info->output.find("compat: 1.1"), std::string::npos)
          << info->output;
    }
  }
  EXPECT_EQ(testing::ReadFileOrDie(out_dir_ + "/disk.raw"), image_);
  EXPECT_EQ(ListDir(out_dir_),
            (std::vector<std::string>{"disk.qcow2", "disk.raw", "disk.vhdx",
                                      "disk.vmdk"}));
}

TEST_F(ImageExportTest, OverwritesOnlyWhenAsked) {
  if (!CanExport()) GTEST_SKIP() << "nbdkit, qemu-img or the plugin missing";
  testing::WriteFileOrDie(out_dir_ + "/disk.raw", "old");
  ImageExportOptions o = Options("raw", "disk.raw");
  EXPECT_EQ(ExportImage(*repo_, o).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(testing::ReadFileOrDie(out_dir_ + "/disk.raw"), "old");
  o.overwrite = true;
  auto r = ExportImage(*repo_, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(testing::ReadFileOrDie(out_dir_ + "/disk.raw"), image_);
  EXPECT_EQ(ListDir(out_dir_), std::vector<std::string>{"disk.raw"});
}

TEST_F(ImageExportTest, CancelRemovesTheTemporaryFile) {
  if (!CanExport()) GTEST_SKIP() << "nbdkit, qemu-img or the plugin missing";
  ImageExportOptions o = Options("qcow2", "disk.qcow2");
  o.cancelled = [] { return true; };
  // Polled once qemu-img runs, before its first wait.
  Status s = ExportImage(*repo_, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_TRUE(ListDir(out_dir_).empty());
  for (const std::string& n : ListDir(dir_.path())) {
    EXPECT_EQ(n.find("cairn-export-"), std::string::npos) << n;
  }
}

TEST_F(ImageExportTest, QemuImgFailureLeavesNothing) {
  if (!CanExport()) GTEST_SKIP() << "nbdkit, qemu-img or the plugin missing";
  ImageExportOptions o = Options("raw", "disk.raw");
  o.qemu_img_path = "false";  // exits 1 without writing
  Status s = ExportImage(*repo_, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_NE(s.message().find("qemu-img convert exited with status 1"),
            absl::string_view::npos)
      << s;
  o.qemu_img_path = "/nonexistent/qemu-img";
  s = ExportImage(*repo_, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(ListDir(out_dir_).empty());
  for (const std::string& n : ListDir(dir_.path())) {
    EXPECT_EQ(n.find("cairn-export-"), std::string::npos) << n;
  }
}

TEST_F(ImageExportTest, DamagedChunkIsDataLossAndLeavesNothing) {
  if (!CanExport()) GTEST_SKIP() << "nbdkit, qemu-img or the plugin missing";
  std::string chunk;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(dir_.Sub("repo/chunks"))) {
    if (e.is_regular_file()) {
      chunk = e.path().string();
      break;
    }
  }
  ASSERT_FALSE(chunk.empty());
  testing::FlipByteOrDie(chunk, 40);
  ImageExportOptions o = Options("qcow2", "disk.qcow2");
  Status s = ExportImage(*repo_, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("qemu-img convert"), absl::string_view::npos) << s;
  EXPECT_TRUE(ListDir(out_dir_).empty());
  for (const std::string& n : ListDir(dir_.path())) {
    EXPECT_EQ(n.find("cairn-export-"), std::string::npos) << n;
  }
}

}  // namespace
}  // namespace cairn
