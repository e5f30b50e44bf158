// Tests of media_agent/file_catalogue.h on real file systems: an ext4 image
// made with `mke2fs -d` from a tree the test writes, behind a 1 MiB prefix
// (so partition offsets matter), loop-mounted read-only. Tests that need the
// mount skip unless run as root with mke2fs and loop devices available; the
// path and index tests run everywhere.
#include "media_agent/file_catalogue.h"

#include <fcntl.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "common/data_key.h"
#include "common/strings.h"
#include "media_agent/exported_image.h"
#include "media_agent/read_only_store.h"
#include "tests/testing/test_util.h"
#include "tests/unit/repo_fixture.h"

namespace cairn {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kPrefix = kMiB;  // bytes before the file system
constexpr uint64_t kFsSize = 48 * kMiB;
constexpr uint64_t kBigSize = 5 * kMiB + 123;
constexpr uint64_t kSparseSize = 3 * kMiB + 100;
constexpr uint64_t kSparseTailData = 2 * kMiB + 3 * 4096;  // second data run
const std::string kBadName = "bad\xff\xfename";            // not UTF-8

// ---- Helpers ----------------------------------------------------------------

int Shell(const std::string& command) {
  int rc = std::system((command + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string RunOutput(const std::string& command) {
  std::string out;
  FILE* p = ::popen((command + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

void MustMkdir(const std::string& p) {
  ASSERT_EQ(::mkdir(p.c_str(), 0755), 0) << p;
}

void SetMtime(const std::string& path, int64_t sec) {
  struct timespec t[2] = {{sec, 0}, {sec, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW), 0);
}

// Components of a path: pre-order with children sorted by name bytes is the
// lexicographic order of these vectors.
std::vector<std::string> Components(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// lstat of every file under a directory, by catalogue path ("/", "/a/b"),
// without following symlinks or crossing mounts (nftw FTW_PHYS|FTW_MOUNT):
// an independent view to compare the catalogue with.
std::map<std::string, struct stat>* g_walk = nullptr;
size_t g_walk_prefix = 0;
int WalkCallback(const char* path, const struct stat* st, int, struct FTW*) {
  std::string p(path + g_walk_prefix);
  (*g_walk)[p.empty() ? "/" : p] = *st;
  return 0;
}
std::map<std::string, struct stat> WalkWithNftw(const std::string& dir) {
  std::map<std::string, struct stat> out;
  g_walk = &out;
  g_walk_prefix = dir.size();
  ::nftw(dir.c_str(), WalkCallback, 64, FTW_PHYS | FTW_MOUNT);
  g_walk = nullptr;
  return out;
}

const v1::FileEntry* FindEntry(const v1::FileSystemCatalogue& fs,
                               const std::string& path) {
  for (const auto& e : fs.entries()) {
    if (e.path() == path) return &e;
  }
  return nullptr;
}

std::string ReadRange(const std::string& file, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << file;
  if (fd < 0) return "";
  ssize_t got = ::pread(fd, out.data(), n, static_cast<off_t>(offset));
  ::close(fd);
  EXPECT_EQ(got, static_cast<ssize_t>(n));
  return out;
}

// ---- The shared ext4 image --------------------------------------------------

struct Ext4Image {
  std::unique_ptr<testing::ScratchDir> dir;
  std::string src, fs_img, disk_img, mnt, outside;
  std::string skip;  // non-empty: why the image is unusable
  bool mounted = false;
  v1::FileSystemCatalogue catalogue;
  FileSystemLocation where;

  std::string Mounted(const std::string& path) const { return mnt + path; }
};

void WriteTree(const std::string& s) {
  testing::WriteFileOrDie(s + "/big", testing::PseudoRandomBytes(kBigSize, 11));
  {
    int fd =
        ::open((s + "/sparse").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    std::string head = testing::PseudoRandomBytes(4096, 12);
    std::string tail = testing::PseudoRandomBytes(8192, 13);
    ASSERT_EQ(::pwrite(fd, head.data(), head.size(), 0), 4096);
    ASSERT_EQ(::pwrite(fd, tail.data(), tail.size(), kSparseTailData), 8192);
    ASSERT_EQ(::ftruncate(fd, kSparseSize), 0);  // hole up to the end too
    ::close(fd);
  }
  testing::WriteFileOrDie(s + "/empty", "");
  testing::WriteFileOrDie(s + "/small.txt", "hello cairn\n");
  SetMtime(s + "/small.txt", 1600000000);
  testing::WriteFileOrDie(s + "/Zeta", "capital Z sorts before lower case\n");
  ASSERT_EQ(::symlink("../outside", (s + "/link").c_str()), 0);
  ASSERT_EQ(::symlink("/", (s + "/dirlink").c_str()), 0);
  ASSERT_EQ(::mkfifo((s + "/fifo").c_str(), 0640), 0);
  ASSERT_EQ(::mknod((s + "/devnull").c_str(), S_IFCHR | 0666, makedev(1, 3)),
            0);
  testing::WriteFileOrDie(s + "/suid", "#!/bin/sh\n");
  ASSERT_EQ(::chown((s + "/suid").c_str(), 1234, 1234), 0);
  ASSERT_EQ(::chmod((s + "/suid").c_str(), 04755), 0);  // after chown
  testing::WriteFileOrDie(s + "/with space", "spaced\n");
  testing::WriteFileOrDie(s + "/" + kBadName, "non-UTF-8 name\n");
  MustMkdir(s + "/etc");
  testing::WriteFileOrDie(s + "/etc/hostname", "pc1\n");
  MustMkdir(s + "/sub");
  MustMkdir(s + "/sub/deep");
  MustMkdir(s + "/sub/deep/deeper");
  testing::WriteFileOrDie(s + "/sub/deep/deeper/f.txt", "deep\n");
  testing::WriteFileOrDie(s + "/sub/a.conf", "a\n");
  testing::WriteFileOrDie(s + "/sub/b.conf", "b\n");
  testing::WriteFileOrDie(s + "/sub/.hidden", "h\n");
  ASSERT_EQ(::symlink("..", (s + "/sub/up").c_str()), 0);
  ASSERT_EQ(::link((s + "/small.txt").c_str(), (s + "/sub/hard").c_str()), 0);
  MustMkdir(s + "/mnt-point");
  SetMtime(s + "/link", 1500000000);
}

void BuildImage(Ext4Image* img) {
  if (::geteuid() != 0) {
    img->skip = "needs root (mke2fs -d ownership, loop mounts)";
    return;
  }
  img->dir = std::make_unique<testing::ScratchDir>();
  img->src = img->dir->Sub("src");
  img->fs_img = img->dir->Sub("fs.img");
  img->disk_img = img->dir->Sub("disk.img");
  img->mnt = img->dir->Sub("mnt");
  img->outside = img->dir->Sub("outside");  // where src/link would point
  MustMkdir(img->src);
  MustMkdir(img->mnt);
  MustMkdir(img->outside);
  testing::WriteFileOrDie(img->outside + "/secret", "must not be catalogued");
  WriteTree(img->src);
  if (::testing::Test::HasFatalFailure()) return;
  testing::WriteFileOrDie(img->fs_img, "");
  ASSERT_EQ(::truncate(img->fs_img.c_str(), kFsSize), 0);
  if (Shell(StrCat("mke2fs -q -F -t ext4 -b 4096 -L cairnroot -d ", img->src,
                   " ", img->fs_img)) != 0) {
    img->skip = "mke2fs -d failed (e2fsprogs missing?)";
    return;
  }
  std::string disk = testing::PseudoRandomBytes(kPrefix, 99);
  disk += testing::ReadFileOrDie(img->fs_img);
  testing::WriteFileOrDie(img->disk_img, disk);
  if (Shell(StrCat("mount -o ro,loop,noload,offset=", kPrefix, ",sizelimit=",
                   kFsSize, " ", img->disk_img, " ", img->mnt)) != 0) {
    img->skip = "cannot loop-mount the test image";
    return;
  }
  img->mounted = true;
  img->where = {1, kPrefix, kFsSize, "ext4", "cairnroot", "uuid-1"};
  auto c = CatalogueFileSystem(img->mnt, img->where);
  ASSERT_TRUE(c.ok()) << c.status();
  img->catalogue = *std::move(c);
}

Ext4Image* g_image = nullptr;

Ext4Image& SharedImage() {
  if (g_image == nullptr) {
    g_image = new Ext4Image;
    BuildImage(g_image);
    if (g_image->skip.empty() && ::testing::Test::HasFatalFailure()) {
      g_image->skip = "building the test image failed";
    }
  }
  return *g_image;
}

class UnmountAtExit : public ::testing::Environment {
 public:
  void TearDown() override {
    if (g_image != nullptr && g_image->mounted) {
      if (Shell("umount " + g_image->mnt) != 0)
        Shell("umount -l " + g_image->mnt);
      g_image->mounted = false;
    }
    delete g_image;
    g_image = nullptr;
  }
};
[[maybe_unused]] ::testing::Environment* const kUnmount =
    ::testing::AddGlobalTestEnvironment(new UnmountAtExit);

class MountedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Ext4Image& img = SharedImage();
    if (!img.skip.empty()) GTEST_SKIP() << img.skip;
    ASSERT_TRUE(img.mounted);
  }
  const Ext4Image& img() const { return *g_image; }
  const v1::FileSystemCatalogue& cat() const { return g_image->catalogue; }
};

// ---- The walk ---------------------------------------------------------------

TEST_F(MountedTest, CataloguesEveryFileWithItsAttributes) {
  const auto& c = cat();
  EXPECT_EQ(c.error(), "");
  EXPECT_FALSE(c.truncated());
  EXPECT_EQ(c.partition(), 1u);
  EXPECT_EQ(c.offset(), kPrefix);
  EXPECT_EQ(c.size(), kFsSize);
  EXPECT_EQ(c.fs_type(), "ext4");
  EXPECT_EQ(c.label(), "cairnroot");
  EXPECT_EQ(c.uuid(), "uuid-1");

  // Same set of paths as an independent nftw walk, same attributes as lstat.
  auto expected = WalkWithNftw(img().mnt);
  std::set<std::string> seen;
  for (const auto& e : c.entries()) {
    SCOPED_TRACE(e.path());
    EXPECT_TRUE(seen.insert(e.path()).second) << "listed twice";
    auto it = expected.find(e.path());
    ASSERT_NE(it, expected.end()) << "not in the file system";
    const struct stat& st = it->second;
    EXPECT_EQ(e.size(), static_cast<uint64_t>(st.st_size));
    EXPECT_EQ(e.mode(), st.st_mode & 07777);
    EXPECT_EQ(e.uid(), st.st_uid);
    EXPECT_EQ(e.gid(), st.st_gid);
    EXPECT_EQ(e.inode(), st.st_ino);
    EXPECT_EQ(e.nlink(), st.st_nlink);
    EXPECT_EQ(e.mtime_ns(),
              int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec);
    EXPECT_EQ(e.ctime_ns(),
              int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec);
    switch (st.st_mode & S_IFMT) {
      case S_IFREG:
        EXPECT_EQ(e.type(), v1::FileEntry::REGULAR);
        break;
      case S_IFDIR:
        EXPECT_EQ(e.type(), v1::FileEntry::DIRECTORY);
        break;
      case S_IFLNK: {
        EXPECT_EQ(e.type(), v1::FileEntry::SYMLINK);
        char buf[4096];
        ssize_t n =
            ::readlink(img().Mounted(e.path()).c_str(), buf, sizeof(buf));
        ASSERT_GT(n, 0);
        EXPECT_EQ(e.symlink_target(), std::string(buf, static_cast<size_t>(n)));
        break;
      }
      case S_IFIFO:
        EXPECT_EQ(e.type(), v1::FileEntry::FIFO);
        break;
      case S_IFCHR:
        EXPECT_EQ(e.type(), v1::FileEntry::CHAR_DEVICE);
        EXPECT_EQ(e.rdev(), st.st_rdev);
        break;
      default:
        ADD_FAILURE() << "unexpected type";
    }
  }
  EXPECT_EQ(seen.size(), expected.size());

  // What the tree was written with.
  const v1::FileEntry* suid = FindEntry(c, "/suid");
  ASSERT_NE(suid, nullptr);
  EXPECT_EQ(suid->mode(), 04755u);
  EXPECT_EQ(suid->uid(), 1234u);
  EXPECT_EQ(suid->gid(), 1234u);
  const v1::FileEntry* small = FindEntry(c, "/small.txt");
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(small->mtime_ns(), int64_t{1600000000} * 1000000000);
  EXPECT_EQ(small->size(), 12u);
  EXPECT_EQ(small->nlink(), 2u);
  EXPECT_EQ(FindEntry(c, "/sub/hard")->inode(), small->inode());
  const v1::FileEntry* link = FindEntry(c, "/link");
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->type(), v1::FileEntry::SYMLINK);
  EXPECT_EQ(link->symlink_target(), "../outside");
  EXPECT_EQ(link->mtime_ns(), int64_t{1500000000} * 1000000000);
  EXPECT_EQ(FindEntry(c, "/fifo")->type(), v1::FileEntry::FIFO);
  EXPECT_EQ(FindEntry(c, "/devnull")->rdev(), makedev(1, 3));
  const v1::FileEntry* empty = FindEntry(c, "/empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_TRUE(empty->extents_complete());
  EXPECT_EQ(empty->extents_size(), 0);
  EXPECT_NE(FindEntry(c, "/with space"), nullptr);
  EXPECT_NE(FindEntry(c, "/" + kBadName), nullptr);
  EXPECT_NE(FindEntry(c, "/sub/deep/deeper/f.txt"), nullptr);
  EXPECT_NE(FindEntry(c, "/sub/.hidden"), nullptr);
  EXPECT_EQ(FindEntry(c, "/big")->size(), kBigSize);
  EXPECT_EQ(FindEntry(c, "/sparse")->size(), kSparseSize);
}

TEST_F(MountedTest, EntriesArePreOrderWithChildrenSortedByNameBytes) {
  const auto& c = cat();
  ASSERT_GT(c.entries_size(), 10);
  EXPECT_EQ(c.entries(0).path(), "/");
  EXPECT_EQ(c.entries(0).type(), v1::FileEntry::DIRECTORY);
  for (int i = 1; i < c.entries_size(); ++i) {
    EXPECT_LT(Components(c.entries(i - 1).path()),
              Components(c.entries(i).path()))
        << c.entries(i - 1).path() << " before " << c.entries(i).path();
  }
  // Byte order: 'Z' (0x5a) before 'b', and 0xff after every ASCII letter.
  std::vector<std::string> top;
  for (const auto& e : c.entries()) {
    if (Components(e.path()).size() == 1) top.push_back(e.path());
  }
  std::vector<std::string> want = {"/Zeta",      "/bad\xff\xfename",
                                   "/big",       "/devnull",
                                   "/dirlink",   "/empty",
                                   "/etc",       "/fifo",
                                   "/link",      "/lost+found",
                                   "/mnt-point", "/small.txt",
                                   "/sparse",    "/sub",
                                   "/suid",      "/with space"};
  EXPECT_EQ(top, want);
}

TEST_F(MountedTest, NeverFollowsSymlinks) {
  const auto& c = cat();
  for (const auto& e : c.entries()) {
    const std::string& p = e.path();
    EXPECT_NE(p.rfind("/link/", 0), 0u) << p;
    EXPECT_NE(p.rfind("/dirlink/", 0), 0u) << p;
    EXPECT_NE(p.rfind("/sub/up/", 0), 0u) << p;
    EXPECT_EQ(p.find("secret"), std::string::npos) << p;
  }
  EXPECT_EQ(FindEntry(c, "/dirlink")->type(), v1::FileEntry::SYMLINK);
  EXPECT_EQ(FindEntry(c, "/dirlink")->symlink_target(), "/");
  EXPECT_EQ(FindEntry(c, "/sub/up")->symlink_target(), "..");
  EXPECT_EQ(FindEntry(c, "/link")->extents_size(), 0);
}

TEST_F(MountedTest, ExtentsPointAtTheFilesBytesInTheImage) {
  const auto& c = cat();
  int checked = 0;
  for (const auto& e : c.entries()) {
    if (e.type() != v1::FileEntry::REGULAR) continue;
    SCOPED_TRACE(e.path());
    // ext4 without inline data: every regular file's extents are usable.
    ASSERT_TRUE(e.extents_complete());
    std::string want = testing::ReadFileOrDie(img().Mounted(e.path()));
    ASSERT_EQ(want.size(), e.size());
    std::string got(e.size(), '\0');  // holes read as zeros
    uint64_t prev_end = 0;
    for (const auto& x : e.extents()) {
      EXPECT_GE(x.file_offset(), prev_end);
      EXPECT_GT(x.length(), 0u);
      ASSERT_LE(x.file_offset() + x.length(), e.size());
      EXPECT_GE(x.image_offset(), kPrefix);
      EXPECT_LE(x.image_offset() + x.length(), kPrefix + kFsSize);
      std::string bytes =
          ReadRange(img().disk_img, x.image_offset(), x.length());
      got.replace(x.file_offset(), x.length(), bytes);
      prev_end = x.file_offset() + x.length();
    }
    EXPECT_TRUE(got == want) << "content differs";
    ++checked;
  }
  EXPECT_GE(checked, 8);
  const v1::FileEntry* sparse = FindEntry(c, "/sparse");
  ASSERT_GE(sparse->extents_size(), 2);
  uint64_t mapped = 0;
  for (const auto& x : sparse->extents()) mapped += x.length();
  EXPECT_EQ(mapped, 4096u + 8192u);  // only the data, no hole
  EXPECT_EQ(sparse->extents(0).file_offset(), 0u);
  EXPECT_EQ(sparse->extents(sparse->extents_size() - 1).file_offset(),
            kSparseTailData);
}

TEST_F(MountedTest, StaysOnItsMount) {
  std::string point = img().Mounted("/mnt-point");
  ASSERT_EQ(Shell("mount -t tmpfs -o size=1m cairn-test " + point), 0);
  testing::WriteFileOrDie(point + "/on-tmpfs", "other file system");
  auto c = CatalogueFileSystem(img().mnt, img().where);
  ASSERT_EQ(Shell("umount " + point), 0);
  ASSERT_TRUE(c.ok()) << c.status();
  for (const auto& e : c->entries()) {
    EXPECT_EQ(e.path().rfind("/mnt-point", 0), std::string::npos) << e.path();
  }
  EXPECT_NE(c->error().find("partition 1"), std::string::npos) << c->error();
  EXPECT_NE(c->error().find("/mnt-point: another file system is mounted"),
            std::string::npos)
      << c->error();
  EXPECT_FALSE(c->truncated());
  EXPECT_EQ(c->entries_size(), cat().entries_size() - 1);
}

TEST_F(MountedTest, LimitsTruncateAndNameThePartition) {
  CatalogueLimits few;
  few.max_entries = 5;
  auto c = CatalogueFileSystem(img().mnt, img().where, few);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->truncated());
  EXPECT_EQ(c->entries_size(), 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(c->entries(i).path(), cat().entries(i).path());
  }
  EXPECT_EQ(c->error().rfind("partition 1: ", 0), 0u) << c->error();
  EXPECT_NE(c->error().find("max_entries"), std::string::npos) << c->error();

  CatalogueLimits exact;
  exact.max_entries = static_cast<uint64_t>(cat().entries_size());
  c = CatalogueFileSystem(img().mnt, img().where, exact);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->truncated()) << c->error();
  EXPECT_EQ(c->entries_size(), cat().entries_size());

  CatalogueLimits shallow;
  shallow.max_depth = 1;
  c = CatalogueFileSystem(img().mnt, img().where, shallow);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->truncated());
  EXPECT_NE(c->error().find("partition 1"), std::string::npos);
  EXPECT_NE(c->error().find("max_depth"), std::string::npos) << c->error();
  EXPECT_NE(FindEntry(*c, "/sub"), nullptr);
  for (const auto& e : c->entries()) {
    EXPECT_LE(Components(e.path()).size(), 1u) << e.path();
  }

  CatalogueLimits deep_enough;
  deep_enough.max_depth = 4;  // /sub/deep/deeper/f.txt
  c = CatalogueFileSystem(img().mnt, img().where, deep_enough);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->truncated()) << c->error();
  EXPECT_EQ(c->entries_size(), cat().entries_size());

  CatalogueLimits no_time;
  no_time.deadline = std::chrono::milliseconds(0);
  c = CatalogueFileSystem(img().mnt, img().where, no_time);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->truncated());
  EXPECT_NE(c->error().find("partition 1"), std::string::npos);
  EXPECT_NE(c->error().find("deadline"), std::string::npos) << c->error();
  EXPECT_LT(c->entries_size(), cat().entries_size());

  CatalogueLimits bad;
  bad.max_depth = -1;
  EXPECT_EQ(CatalogueFileSystem(img().mnt, img().where, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
}

int OpenDescriptors() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

// Any directory can be catalogued (no mount or root needed): a tree deeper
// than the descriptor budget, walked under a descriptor limit it would
// exceed if it kept one per level, comes out exact and leaks nothing.
TEST(CatalogueFileSystemTest, DeepTreesNeedFewDescriptorsAndStayExact) {
  testing::ScratchDir dir;
  const std::string root = dir.Sub("tree");
  MustMkdir(root);
  std::string p = root;
  constexpr int kDepth = 150;
  for (int i = 0; i < kDepth; ++i) {
    testing::WriteFileOrDie(p + "/a", "a");
    testing::WriteFileOrDie(p + "/z", "z");  // visited after the subtree
    p += "/d";
    MustMkdir(p);
  }
  const int fds_before = OpenDescriptors();
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old_limit), 0);
  struct rlimit tight = old_limit;
  tight.rlim_cur = static_cast<rlim_t>(fds_before + 80);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  FileSystemLocation where{0, 0, 0, "", "", ""};
  auto c = CatalogueFileSystem(root, where);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old_limit), 0);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->error(), "");
  EXPECT_FALSE(c->truncated());
  EXPECT_EQ(OpenDescriptors(), fds_before);

  std::vector<std::string> want;
  for (const auto& [path, st] : WalkWithNftw(root)) want.push_back(path);
  std::sort(want.begin(), want.end(),
            [](const std::string& a, const std::string& b) {
              return Components(a) < Components(b);
            });
  std::vector<std::string> got;
  for (const auto& e : c->entries()) got.push_back(e.path());
  EXPECT_EQ(got, want);
  EXPECT_EQ(got.size(), 1u + 3u * kDepth);
  // Without a partition size no extent can be proven inside it.
  EXPECT_FALSE(FindEntry(*c, "/a")->extents_complete());
}

TEST(CatalogueFileSystemTest, PathsLongerThan4096BytesAreReportedAndSkipped) {
  testing::ScratchDir dir;
  const std::string root = dir.Sub("tree");
  MustMkdir(root);
  const std::string name(250, 'n');
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 17; ++i) {  // 17 * 251 bytes > 4096
    ASSERT_EQ(::mkdirat(fd, name.c_str(), 0755), 0);
    int next = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY);
    ::close(fd);
    ASSERT_GE(next, 0);
    fd = next;
  }
  ::close(fd);
  testing::WriteFileOrDie(root + "/after", "x");
  auto c = CatalogueFileSystem(root, FileSystemLocation{});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(c->error().find("path longer than 4096 bytes"), std::string::npos)
      << c->error();
  EXPECT_EQ(c->entries_size(), 1 + 1 + 16);  // root, after, 16 levels
  for (const auto& e : c->entries()) EXPECT_LE(e.path().size(), 4096u);
  EXPECT_NE(FindEntry(*c, "/after"), nullptr);
  // Clean up what ScratchDir's remove_all could not reach by path.
  EXPECT_EQ(Shell("rm -rf " + root), 0);  // rm copes with long paths
}

TEST(CatalogueFileSystemTest, MissingMountDirectoryIsAnError) {
  FileSystemLocation where;
  EXPECT_EQ(
      CatalogueFileSystem("/nonexistent/cairn-mnt", where).status().code(),
      absl::StatusCode::kNotFound);
}

TEST(CatalogueFileSystemTest, WithoutUsableFiemapExtentsAreIncomplete) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount tmpfs";
  testing::ScratchDir dir;
  std::string mnt = dir.Sub("tmpfs");
  MustMkdir(mnt);
  if (Shell("mount -t tmpfs -o size=4m cairn-test " + mnt) != 0)
    GTEST_SKIP() << "cannot mount tmpfs";
  testing::WriteFileOrDie(mnt + "/f", "data on tmpfs\n");
  FileSystemLocation where{0, 0, 4 * kMiB, "tmpfs", "", ""};
  auto c = CatalogueFileSystem(mnt, where);
  Shell("umount " + mnt);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->error(), "");
  const v1::FileEntry* f = FindEntry(*c, "/f");
  ASSERT_NE(f, nullptr);
  EXPECT_FALSE(f->extents_complete());
  EXPECT_EQ(f->extents_size(), 0);
  EXPECT_EQ(c->partition(), 0u);
}

TEST(CatalogueFileSystemTest, DamagedDirectoryIsReportedAndTheWalkGoesOn) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to loop-mount";
  testing::ScratchDir dir;
  std::string src = dir.Sub("src"), img = dir.Sub("fs.img"),
              mnt = dir.Sub("mnt");
  MustMkdir(src);
  MustMkdir(mnt);
  MustMkdir(src + "/sub");
  testing::WriteFileOrDie(src + "/a.txt", "a\n");
  testing::WriteFileOrDie(src + "/zz.txt", "z\n");
  for (int i = 0; i < 20; ++i) {
    testing::WriteFileOrDie(StrCat(src, "/sub/file-", i), "x\n");
  }
  testing::WriteFileOrDie(img, "");
  ASSERT_EQ(::truncate(img.c_str(), 16 * kMiB), 0);
  if (Shell(StrCat("mke2fs -q -F -t ext4 -b 4096 -d ", src, " ", img)) != 0)
    GTEST_SKIP() << "mke2fs -d failed";
  std::string blocks = RunOutput(StrCat("debugfs -R 'blocks /sub' ", img));
  uint64_t block = std::strtoull(blocks.c_str(), nullptr, 10);
  if (block == 0) GTEST_SKIP() << "debugfs cannot locate /sub";
  // Garble the directory's block (its checksum no longer matches).
  {
    int fd = ::open(img.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    std::string junk(64, '\xa5');
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(),
                       static_cast<off_t>(block * 4096 + 40)),
              64);
    ::close(fd);
  }
  if (Shell(StrCat("mount -o ro,loop,noload ", img, " ", mnt)) != 0)
    GTEST_SKIP() << "cannot loop-mount";
  FileSystemLocation where{0, 0, 16 * kMiB, "ext4", "", ""};
  auto c = CatalogueFileSystem(mnt, where);
  Shell("umount " + mnt);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->truncated());
  EXPECT_NE(c->error().find("partition 0: "), std::string::npos) << c->error();
  EXPECT_NE(c->error().find("/sub: read directory"), std::string::npos)
      << c->error();
  EXPECT_NE(FindEntry(*c, "/a.txt"), nullptr);
  EXPECT_NE(FindEntry(*c, "/sub"), nullptr);
  EXPECT_NE(FindEntry(*c, "/zz.txt"), nullptr);  // after the damage
}

// ---- Reading through the extents of a backed-up image -----------------------

std::string TestSecret(char seed) {
  std::string s(DataKey::kSize, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(seed + 3 * i);
  return s;
}

class ExtentReadTest : public RepoFixture,
                       public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    Ext4Image& img = SharedImage();
    if (!img.skip.empty()) GTEST_SKIP() << img.skip;
    RepoFixture::SetUp();
    if (GetParam()) {
      key_ = std::make_unique<DataKey>(*DataKey::FromSecret(TestSecret(4)));
    }
    BackupData("disk", testing::ReadFileOrDie(img.disk_img), "", key_.get());
    auto store = ReadOnlyStore::Open(dir_.Sub("repo"), Env::Default());
    ASSERT_TRUE(store.ok()) << store.status();
    auto image = ExportedImage::Open(
        *std::move(store), key_ ? std::make_unique<DataKey>(*key_) : nullptr,
        "disk");
    ASSERT_TRUE(image.ok()) << image.status();
    image_ = *std::move(image);
  }

  const v1::FileEntry& Entry(const std::string& path) {
    const v1::FileEntry* e = FindEntry(g_image->catalogue, path);
    EXPECT_NE(e, nullptr) << path;
    static v1::FileEntry none;
    return e ? *e : none;
  }

  StatusOr<std::string> Read(const v1::FileEntry& e, uint64_t offset,
                             uint64_t length, size_t block = 1 << 20) {
    std::string out;
    size_t max_piece = 0;
    Status s = ReadFileFromExtents(
        image_.get(), e, offset, length,
        [&](std::string_view piece) {
          max_piece = std::max(max_piece, piece.size());
          out.append(piece);
          return absl::OkStatus();
        },
        block);
    if (!s.ok()) return s;
    EXPECT_LE(max_piece, block);
    return out;
  }

  std::unique_ptr<DataKey> key_;
  std::unique_ptr<ExportedImage> image_;
};

TEST_P(ExtentReadTest, WholeFilesAreByteExact) {
  for (const char* path : {"/big", "/sparse", "/small.txt", "/empty",
                           "/etc/hostname", "/sub/deep/deeper/f.txt"}) {
    SCOPED_TRACE(path);
    std::string want = testing::ReadFileOrDie(g_image->Mounted(path));
    auto got = Read(Entry(path), 0, 0);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->size(), want.size());
    EXPECT_TRUE(*got == want);
  }
  // The hole reads as zeros.
  auto hole = Read(Entry("/sparse"), 4096, kSparseTailData - 4096);
  ASSERT_TRUE(hole.ok());
  EXPECT_EQ(*hole, std::string(kSparseTailData - 4096, '\0'));
}

TEST_P(ExtentReadTest, RangesAndBlockSizes) {
  const std::string big = testing::ReadFileOrDie(g_image->Mounted("/big"));
  const std::string sparse =
      testing::ReadFileOrDie(g_image->Mounted("/sparse"));
  struct Case {
    const char* path;
    const std::string* content;
    uint64_t offset, length;
    size_t block;
  };
  const Case cases[] = {
      {"/big", &big, 0, 1, 1 << 20},
      {"/big", &big, 4095, 2, 1 << 20},
      {"/big", &big, 1000, 3 * kMiB, 4097},
      {"/big", &big, kBigSize - 10, 0, 3},           // to the end
      {"/big", &big, kBigSize - 10, 1000, 1 << 20},  // clipped
      {"/big", &big, 0, 0, 65536},
      {"/sparse", &sparse, 4000, 200, 7},  // data into the hole
      {"/sparse", &sparse, kSparseTailData - 100, 300, 64},
      {"/sparse", &sparse, kSparseTailData + 8000, 0,
       1 << 20},  // into tail hole
      {"/sparse", &sparse, 0, 0, 333333},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(StrCat(c.path, " offset ", c.offset, " length ", c.length,
                        " block ", c.block));
    auto got = Read(Entry(c.path), c.offset, c.length, c.block);
    ASSERT_TRUE(got.ok()) << got.status();
    std::string want = c.content->substr(
        c.offset, c.length == 0 ? std::string::npos : c.length);
    EXPECT_TRUE(*got == want) << got->size() << " vs " << want.size();
  }
  auto at_end = Read(Entry("/big"), kBigSize, 0);
  ASSERT_TRUE(at_end.ok());
  EXPECT_EQ(*at_end, "");
  EXPECT_EQ(Read(Entry("/big"), kBigSize + 1, 0).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Read(Entry("/big"), 0, 10, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(ExtentReadTest, RefusesWhatItCannotReadExactly) {
  EXPECT_EQ(Read(Entry("/sub"), 0, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Read(Entry("/link"), 0, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  v1::FileEntry incomplete = Entry("/big");
  incomplete.set_extents_complete(false);
  Status s = Read(incomplete, 0, 0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("/big"), absl::string_view::npos) << s;

  v1::FileEntry outside = Entry("/big");
  outside.mutable_extents(0)->set_image_offset(image_->size() - 100);
  s = Read(outside, 0, 0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("outside the image"), absl::string_view::npos)
      << s;
  EXPECT_NE(s.message().find("/big"), absl::string_view::npos) << s;

  v1::FileEntry overlapping = Entry("/sparse");
  ASSERT_GE(overlapping.extents_size(), 2);
  overlapping.mutable_extents(1)->set_file_offset(0);
  EXPECT_EQ(Read(overlapping, 0, 0).status().code(),
            absl::StatusCode::kDataLoss);

  // The sink's error stops the read.
  int calls = 0;
  s = ReadFileFromExtents(
      image_.get(), Entry("/big"), 0, 0,
      [&](std::string_view) {
        ++calls;
        return absl::CancelledError("client went away");
      },
      4096);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 1);
}

INSTANTIATE_TEST_SUITE_P(Keys, ExtentReadTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Encrypted" : "Plain";
                         });

// ---- NormalizeBrowsePath ----------------------------------------------------

TEST(NormalizeBrowsePathTest, Normalizes) {
  EXPECT_EQ(*NormalizeBrowsePath("/"), "/");
  EXPECT_EQ(*NormalizeBrowsePath(""), "/");
  EXPECT_EQ(*NormalizeBrowsePath("//"), "/");
  EXPECT_EQ(*NormalizeBrowsePath("/."), "/");
  EXPECT_EQ(*NormalizeBrowsePath("/etc/"), "/etc");
  EXPECT_EQ(*NormalizeBrowsePath("etc"), "/etc");
  EXPECT_EQ(*NormalizeBrowsePath("etc//ssh/./sshd_config"),
            "/etc/ssh/sshd_config");
  EXPECT_EQ(*NormalizeBrowsePath("/a/.../b"), "/a/.../b");  // a real name
  EXPECT_EQ(*NormalizeBrowsePath("/a/..b/c.."), "/a/..b/c..");
  EXPECT_EQ(*NormalizeBrowsePath("/with space/" + kBadName),
            "/with space/" + kBadName);
  EXPECT_EQ(NormalizeBrowsePath(std::string(4096, 'a'))->size(), 4097u);
}

TEST(NormalizeBrowsePathTest, RefusesTraversalNulAndLength) {
  for (const char* bad : {"..", "/..", "/etc/..", "../etc/passwd",
                          "/etc/../../root", "a/./../b", "/a/../"}) {
    Status s = NormalizeBrowsePath(bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("path traversal"), absl::string_view::npos)
        << bad << ": " << s;
  }
  Status nul = NormalizeBrowsePath(std::string("/etc\0/x", 7)).status();
  EXPECT_EQ(nul.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(nul.message().find("NUL"), absl::string_view::npos);
  Status longer = NormalizeBrowsePath("/" + std::string(4096, 'a')).status();
  EXPECT_EQ(longer.code(), absl::StatusCode::kInvalidArgument);
}

// ---- CatalogueIndex ---------------------------------------------------------

v1::FileEntry* Add(v1::FileSystemCatalogue* fs, const std::string& path,
                   v1::FileEntry::Type type) {
  v1::FileEntry* e = fs->add_entries();
  e->set_path(path);
  e->set_type(type);
  return e;
}
constexpr auto kDir = v1::FileEntry::DIRECTORY;
constexpr auto kReg = v1::FileEntry::REGULAR;

// Partition 1: an EFI system partition; partition 2: the root file system.
// Entries deliberately not in sorted order.
v1::FileCatalogue TwoFileSystems() {
  v1::FileCatalogue c;
  c.set_backup_id("pc1-full");
  v1::FileSystemCatalogue* esp = c.add_filesystems();
  esp->set_partition(1);
  esp->set_fs_type("vfat");
  Add(esp, "/", kDir);
  Add(esp, "/EFI", kDir);
  Add(esp, "/EFI/bootx64.efi", kReg);
  v1::FileSystemCatalogue* root = c.add_filesystems();
  root->set_partition(2);
  root->set_fs_type("ext4");
  Add(root, "/", kDir);
  Add(root, "/home", kDir);
  Add(root, "/home/u", kDir);
  Add(root, "/home/u/notes.txt", kReg);
  Add(root, "/home/u/a.txt", kReg);
  Add(root, "/etc", kDir);
  Add(root, "/etc/ssh", kDir);
  Add(root, "/etc/ssh/sshd_config", kReg)->set_size(3000);
  Add(root, "/etc/hostname", kReg);
  Add(root, "/etc/.hidden", kReg);
  Add(root, "/Zz", kReg);
  return c;
}

std::vector<std::string> Paths(const std::vector<const v1::FileEntry*>& es) {
  std::vector<std::string> out;
  for (const auto* e : es) out.push_back(e->path());
  return out;
}
std::vector<std::string> Paths(
    const std::vector<std::pair<uint32_t, const v1::FileEntry*>>& es) {
  std::vector<std::string> out;
  for (const auto& [p, e] : es) out.push_back(StrCat(p, ":", e->path()));
  return out;
}

TEST(CatalogueIndexTest, DefaultFileSystemIsTheOneWithEtc) {
  auto index = CatalogueIndex::Create(TwoFileSystems());
  ASSERT_TRUE(index.ok()) << index.status();
  auto fs = (*index)->FileSystem(std::nullopt);
  ASSERT_TRUE(fs.ok()) << fs.status();
  EXPECT_EQ((*fs)->partition(), 2u);
  EXPECT_EQ((*(*index)->FileSystem(1))->partition(), 1u);
  Status missing = (*index)->FileSystem(7).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("1 (vfat), 2 (ext4)"),
            absl::string_view::npos)
      << missing;

  // Only one file system: it, /etc or not.
  v1::FileCatalogue one;
  *one.add_filesystems() = TwoFileSystems().filesystems(0);
  auto single = CatalogueIndex::Create(one);
  ASSERT_TRUE(single.ok());
  EXPECT_EQ((*(*single)->FileSystem(std::nullopt))->partition(), 1u);

  // Two without /etc: the caller must choose.
  v1::FileCatalogue none = TwoFileSystems();
  none.mutable_filesystems(1)->clear_entries();
  Add(none.mutable_filesystems(1), "/", kDir);
  auto ambiguous = CatalogueIndex::Create(none);
  ASSERT_TRUE(ambiguous.ok());
  Status s = (*ambiguous)->FileSystem(std::nullopt).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("partitions 1 (vfat), 2 (ext4)"),
            absl::string_view::npos)
      << s;

  auto empty = CatalogueIndex::Create(v1::FileCatalogue());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ((*empty)->FileSystem(std::nullopt).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CatalogueIndexTest, LookupAndList) {
  auto index = *CatalogueIndex::Create(TwoFileSystems());
  const v1::FileSystemCatalogue& fs = **index->FileSystem(2);
  auto e = index->Lookup(fs, "etc//ssh/./sshd_config");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->path(), "/etc/ssh/sshd_config");
  EXPECT_EQ((*e)->size(), 3000u);
  EXPECT_EQ((*index->Lookup(fs, "/"))->path(), "/");

  Status nf = index->Lookup(fs, "/etc/shadow").status();
  EXPECT_EQ(nf.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(nf.message().find("/etc/shadow"), absl::string_view::npos);
  EXPECT_NE(nf.message().find("partition 2"), absl::string_view::npos);
  Status trav = index->Lookup(fs, "/etc/../etc").status();
  EXPECT_EQ(trav.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(trav.message().find("path traversal"), absl::string_view::npos);
  // A file system that is not this index's.
  v1::FileSystemCatalogue foreign = fs;
  EXPECT_EQ(index->Lookup(foreign, "/").status().code(),
            absl::StatusCode::kInvalidArgument);

  auto root = index->List(fs, "/");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(Paths(*root),
            (std::vector<std::string>{"/Zz", "/etc", "/home"}));  // bytes
  auto etc = index->List(fs, "/etc/");
  ASSERT_TRUE(etc.ok());
  EXPECT_EQ(Paths(*etc), (std::vector<std::string>{
                             "/etc/.hidden", "/etc/hostname", "/etc/ssh"}));
  EXPECT_TRUE(index->List(fs, "/home/u/a.txt").status().code() ==
              absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(index->List(fs, "/nope").status().code(),
            absl::StatusCode::kNotFound);
  auto esp = index->List(**index->FileSystem(1), "/EFI");
  ASSERT_TRUE(esp.ok());
  EXPECT_EQ(Paths(*esp), (std::vector<std::string>{"/EFI/bootx64.efi"}));
}

TEST(CatalogueIndexTest, FindMatchesNamesOrPaths) {
  auto index = *CatalogueIndex::Create(TwoFileSystems());
  bool truncated = true;
  auto txt = index->Find("*.txt", std::nullopt, 100, &truncated);
  EXPECT_FALSE(truncated);
  EXPECT_EQ(Paths(txt), (std::vector<std::string>{"2:/home/u/notes.txt",
                                                  "2:/home/u/a.txt"}));
  // FNM_PERIOD is off: '*' matches a leading dot.
  auto hidden = index->Find("*hidden", std::nullopt, 100, nullptr);
  EXPECT_EQ(Paths(hidden), (std::vector<std::string>{"2:/etc/.hidden"}));
  // With '/': the whole path, '*' not crossing '/'.
  auto etc = index->Find("/etc/*", std::nullopt, 100, nullptr);
  EXPECT_EQ(Paths(etc),
            (std::vector<std::string>{"2:/etc/ssh", "2:/etc/hostname",
                                      "2:/etc/.hidden"}));
  EXPECT_EQ(Paths(index->Find("/etc/*/*", std::nullopt, 100, nullptr)),
            (std::vector<std::string>{"2:/etc/ssh/sshd_config"}));
  EXPECT_EQ(Paths(index->Find("/", std::nullopt, 100, nullptr)),
            (std::vector<std::string>{"1:/", "2:/"}));
  // One partition only.
  EXPECT_EQ(Paths(index->Find("*", 1, 100, nullptr)),
            (std::vector<std::string>{"1:/EFI", "1:/EFI/bootx64.efi"}));
  EXPECT_TRUE(index->Find("*.efi", 2, 100, nullptr).empty());
  EXPECT_TRUE(index->Find("*", 9, 100, nullptr).empty());
  // Limits.
  auto two = index->Find("*", std::nullopt, 2, &truncated);
  EXPECT_EQ(two.size(), 2u);
  EXPECT_TRUE(truncated);
  auto exact = index->Find("sshd_config", std::nullopt, 1, &truncated);
  EXPECT_EQ(exact.size(), 1u);
  EXPECT_FALSE(truncated);
  EXPECT_TRUE(index->Find("[", std::nullopt, 100, nullptr).empty());
  EXPECT_TRUE(index->Find("", std::nullopt, 100, nullptr).empty());
}

TEST(CatalogueIndexTest, SubtreeIsPreOrderSorted) {
  auto index = *CatalogueIndex::Create(TwoFileSystems());
  const v1::FileSystemCatalogue& fs = **index->FileSystem(2);
  EXPECT_EQ(Paths(index->Subtree(fs, "/home")),
            (std::vector<std::string>{"/home", "/home/u", "/home/u/a.txt",
                                      "/home/u/notes.txt"}));
  EXPECT_EQ(Paths(index->Subtree(fs, "/")),
            (std::vector<std::string>{
                "/", "/Zz", "/etc", "/etc/.hidden", "/etc/hostname", "/etc/ssh",
                "/etc/ssh/sshd_config", "/home", "/home/u", "/home/u/a.txt",
                "/home/u/notes.txt"}));
  EXPECT_EQ(Paths(index->Subtree(fs, "/etc/hostname")),
            (std::vector<std::string>{"/etc/hostname"}));
  EXPECT_TRUE(index->Subtree(fs, "/nope").empty());
  EXPECT_TRUE(index->Subtree(fs, "/../etc").empty());
}

TEST(CatalogueIndexTest, RefusesMalformedCatalogues) {
  auto expect_bad = [](v1::FileCatalogue c, std::string_view what) {
    auto index = CatalogueIndex::Create(std::move(c));
    EXPECT_EQ(index.status().code(), absl::StatusCode::kInvalidArgument)
        << what;
    EXPECT_NE(index.status().message().find(std::string(what)),
              absl::string_view::npos)
        << index.status();
  };
  v1::FileCatalogue dup = TwoFileSystems();
  Add(dup.mutable_filesystems(1), "/etc/hostname", kReg);
  expect_bad(dup, "listed twice");
  v1::FileCatalogue orphan = TwoFileSystems();
  Add(orphan.mutable_filesystems(1), "/var/log/x", kReg);
  expect_bad(orphan, "has no parent");
  v1::FileCatalogue file_parent = TwoFileSystems();
  Add(file_parent.mutable_filesystems(1), "/etc/hostname/x", kReg);
  expect_bad(file_parent, "not a directory");
  for (const char* p : {"/etc/", "etc", "/a//b", "/a/./b", "/a/../b", ""}) {
    v1::FileCatalogue c = TwoFileSystems();
    Add(c.mutable_filesystems(1), p, kReg);
    expect_bad(c, "not a normal path");
  }
  v1::FileCatalogue twice = TwoFileSystems();
  twice.mutable_filesystems(1)->set_partition(1);
  expect_bad(twice, "listed twice");
}

TEST_F(MountedTest, IndexOverARealCatalogue) {
  v1::FileCatalogue c;
  c.set_backup_id("b1");
  *c.add_filesystems() = cat();
  auto index = CatalogueIndex::Create(std::move(c));
  ASSERT_TRUE(index.ok()) << index.status();
  auto fs = (*index)->FileSystem(std::nullopt);
  ASSERT_TRUE(fs.ok());
  // The subtree of the root is the whole catalogue, in its order.
  std::vector<std::string> all;
  for (const auto& e : cat().entries()) all.push_back(e.path());
  EXPECT_EQ(Paths((*index)->Subtree(**fs, "/")), all);
  // List("/sub") is the mount's directory, sorted.
  std::vector<std::string> want;
  for (const auto& [p, st] : WalkWithNftw(img().mnt)) {
    if (p.rfind("/sub/", 0) == 0 && Components(p).size() == 2)
      want.push_back(p);
  }
  std::sort(want.begin(), want.end());
  auto sub = (*index)->List(**fs, "sub/");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(Paths(*sub), want);
  auto found = (*index)->Find("*.conf", std::nullopt, 10, nullptr);
  EXPECT_EQ(Paths(found),
            (std::vector<std::string>{"1:/sub/a.conf", "1:/sub/b.conf"}));
  EXPECT_EQ((*(*index)->Lookup(**fs, "/" + kBadName))->size(), 15u);
}

}  // namespace
}  // namespace cairn
