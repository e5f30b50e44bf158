// RootDir: symlinks resolved inside the root, loops, escapes, bounded reads.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "agent/root_dir.h"
#include "common/strings.h"
#include "profile_test_util.h"

namespace cairn {
namespace {

using profile_test::ScratchDir;
using ::testing::HasSubstr;

TEST(RootDir, AbsoluteLinkTargetsStayInsideTheRoot) {
  ScratchDir d;
  d.Write("usr/lib/os-release", "ID=debian\n");
  d.Symlink("etc/os-release", "/usr/lib/os-release");
  auto root = RootDir::Open(d.path());
  ASSERT_TRUE(root.ok());
  auto text = root->ReadFile("/etc/os-release");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "ID=debian\n");
  EXPECT_EQ(*root->Resolve("/etc/os-release"), "/usr/lib/os-release");
}

TEST(RootDir, SysfsDriverLinkResolvesTextuallyWhenTargetIsMissing) {
  ScratchDir d;
  d.Write("sys/devices/pci0000:00/0000:00:02.0/vendor", "0x8086\n");
  d.Symlink("sys/devices/pci0000:00/0000:00:02.0/driver",
            "../../../bus/pci/drivers/e1000");
  auto root = RootDir::Open(d.path());
  ASSERT_TRUE(root.ok());
  auto r = root->Resolve("/sys/devices/pci0000:00/0000:00:02.0/driver",
                         RootDir::Missing::kAllowMissing);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "/sys/bus/pci/drivers/e1000");
  EXPECT_TRUE(absl::IsNotFound(
      root->Resolve("/sys/devices/pci0000:00/0000:00:02.0/driver").status()));
}

TEST(RootDir, SymlinkLoopIsAClearError) {
  ScratchDir d;
  d.Symlink("sys/class/net/a", "b");
  d.Symlink("sys/class/net/b", "a");
  auto root = RootDir::Open(d.path());
  ASSERT_TRUE(root.ok());
  auto r = root->ReadFile("/sys/class/net/a");
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("symlink loop"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("/sys/class/net/a"));
}

TEST(RootDir, SymlinkEscapingTheRootIsRefused) {
  ScratchDir outside;
  outside.Write("secret", "do not read\n");
  ScratchDir d;
  // Enough ".." to climb out of the scratch root into /tmp.
  d.Symlink("etc/fstab",
            "../../../../../../../../tmp/" +
                std::filesystem::path(outside.path()).filename().string() +
                "/secret");
  auto root = RootDir::Open(d.path());
  ASSERT_TRUE(root.ok());
  auto r = root->ReadFile("/etc/fstab");
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("escapes the root"));
  // And ".." in the requested path itself cannot climb out either.
  EXPECT_TRUE(absl::IsInvalidArgument(root->Resolve("/../etc").status()));
}

TEST(RootDir, FifoIsRefusedNotBlockedOn) {
  ScratchDir d;
  std::filesystem::create_directories(d.path() + "/proc");
  ASSERT_EQ(::mkfifo((d.path() + "/proc/cpuinfo").c_str(), 0600), 0);
  auto root = RootDir::Open(d.path());
  ASSERT_TRUE(root.ok());
  auto r = root->ReadFile("/proc/cpuinfo");
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("not a regular file"));
}

TEST(RootDir, ReadsAreBounded) {
  ScratchDir d;
  d.Write("big", std::string(5000, 'x'));
  auto root = RootDir::Open(d.path());
  ASSERT_TRUE(root.ok());
  auto r = root->ReadFile("/big", 4096);
  EXPECT_TRUE(absl::IsResourceExhausted(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("/big"));
  EXPECT_TRUE(root->ReadFile("/big", 5000).ok());
}

TEST(RootDir, ListAndReadLink) {
  ScratchDir d;
  d.Write("dir/b", "");
  d.Write("dir/a", "");
  d.Symlink("dir/l", "a");
  auto root = RootDir::Open(d.path());
  ASSERT_TRUE(root.ok());
  auto names = root->List("/dir");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b", "l"}));
  EXPECT_EQ(**root->ReadLink("/dir/l"), "a");
  EXPECT_FALSE(root->ReadLink("/dir/a")->has_value());
  EXPECT_EQ(*root->KindOf("/missing"), RootDir::Kind::kMissing);
}

}  // namespace
}  // namespace cairn
