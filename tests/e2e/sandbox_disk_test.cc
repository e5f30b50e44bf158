// End-to-end tests of SandboxDisk (media_agent/sandbox_disk.h): a small GPT
// disk image - an ext4 partition made with `mke2fs -d` from a tree the test
// writes, a swap partition, and a second ext4 partition with a damaged
// directory block - is backed up (encrypted) into a repository, exported by
// nbdkit with Cairn's plugin and attached to ONE libguestfs appliance shared
// by every test of the suite (SetUpTestSuite: launches take 20-25 s under
// TCG). The catalogue is compared with the source tree (lstat) and, when
// root, with the host path's CatalogueFileSystem of the same image
// loop-mounted. Skips when sfdisk, mke2fs, mkswap, debugfs, nbdkit or the
// plugin are missing.
#include "media_agent/sandbox_disk.h"

#include <fcntl.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "agent/backup_pipeline.h"
#include "common/data_key.h"
#include "common/env.h"
#include "common/strings.h"
#include "media_agent/file_catalogue.h"
#include "media_agent/nbd_export.h"
#include "media_agent/repository.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kSector = 512;
// Partition 1 (ext4, the tree), 2 (swap), 3 (ext4, damaged), in MiB.
constexpr uint64_t kP1Start = 1, kP1Size = 40;
constexpr uint64_t kP2Start = 41, kP2Size = 8;
constexpr uint64_t kP3Start = 49, kP3Size = 8;
constexpr uint64_t kImageSize = 60 * kMiB;
constexpr uint64_t kBigSize = 3 * kMiB + 12345;
const std::string kBadName = "bad\xff\xfename";  // not UTF-8
const std::string kLabel = "cairn-sbx";
const std::string kUuid = "5a1b0c2d-3e4f-4a5b-8c6d-7e8f90a1b2c3";
const std::string kBackup = "sealed";
// The shared appliance's call timeout: well above the slowest call seen
// under TCG on a loaded machine (list_filesystems, ~7 s), short enough for
// the watchdog test to wait for.
constexpr auto kCallTimeout = std::chrono::seconds(30);

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

bool HaveTool(const std::string& name) {
  return Shell(StrCat("command -v ", name)) == 0;
}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Components of a catalogue path: pre-order with children sorted by name
// bytes is the lexicographic order of these vectors.
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

// lstat of everything under `dir` by catalogue path ("/", "/a/b").
std::map<std::string, struct stat>* g_walk = nullptr;
size_t g_walk_prefix = 0;
int WalkCallback(const char* path, const struct stat* st, int, struct FTW*) {
  std::string p(path + g_walk_prefix);
  (*g_walk)[p.empty() ? "/" : p] = *st;
  return 0;
}
std::map<std::string, struct stat> LstatTree(const std::string& dir) {
  std::map<std::string, struct stat> out;
  g_walk = &out;
  g_walk_prefix = dir.size();
  ::nftw(dir.c_str(), WalkCallback, 64, FTW_PHYS | FTW_MOUNT);
  g_walk = nullptr;
  return out;
}

// Every regular file under `dir` with its content.
std::map<std::string, std::string> SnapshotTree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    out[std::filesystem::relative(e.path(), dir).string()] =
        testing::ReadFileOrDie(e.path().string());
  }
  return out;
}

std::string ReadLinkOrDie(const std::string& path) {
  std::string buf(4096, '\0');
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
  EXPECT_GT(n, 0) << path;
  buf.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return buf;
}

// The state letter of process `pid` in /proc ('-' once it is gone).
char ProcessState(pid_t pid) {
  std::string stat;
  std::ifstream f(StrCat("/proc/", pid, "/stat"));
  if (!f) return '-';
  std::getline(f, stat);
  size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size()
             ? '?'
             : stat[paren + 2];
}

const v1::FileSystemCatalogue* FindFs(
    const google::protobuf::RepeatedPtrField<v1::FileSystemCatalogue>& list,
    uint32_t partition) {
  for (const auto& fs : list) {
    if (fs.partition() == partition) return &fs;
  }
  return nullptr;
}

std::map<std::string, const v1::FileEntry*> ByPath(
    const v1::FileSystemCatalogue& fs) {
  std::map<std::string, const v1::FileEntry*> out;
  for (const auto& e : fs.entries()) out[e.path()] = &e;
  return out;
}

// ---- The shared image, export and appliance ---------------------------------

struct Shared {
  std::unique_ptr<testing::ScratchDir> dir;
  std::string skip;   // non-empty: why the suite cannot run here
  std::string error;  // non-empty: setting up failed
  std::string src, image, repo, secret;
  std::string big;  // content of /big
  std::map<std::string, std::string> chunks_before;
  std::unique_ptr<NbdExport> nbd;
  std::unique_ptr<SandboxDisk> disk;
  v1::FileCatalogue catalogue;
  double launch_seconds = 0;
  double catalogue_seconds = 0;
};
Shared* g_shared = nullptr;

// Sets every entry's times to whole seconds, deepest first (creating a
// child changes its parent's mtime).
void SetTimes(const std::string& root) {
  std::map<std::string, struct stat> tree = LstatTree(root);
  int64_t sec = 1600000000;
  for (auto it = tree.rbegin(); it != tree.rend(); ++it) {
    std::string p = it->first == "/" ? root : root + it->first;
    struct timespec t[2] = {{sec - 3600, 0}, {sec, 0}};
    ::utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW);
    sec += 61;
  }
}

std::string WriteSourceTree(const std::string& s) {
  auto mk = [](const std::string& p) { return ::mkdir(p.c_str(), 0755) == 0; };
  if (!mk(s)) return "mkdir " + s;
  testing::WriteFileOrDie(s + "/hello.txt", "hello sandbox\n");
  testing::WriteFileOrDie(s + "/big", g_shared->big);
  testing::WriteFileOrDie(s + "/empty", "");
  testing::WriteFileOrDie(s + "/" + kBadName, "a name that is not UTF-8\n");
  testing::WriteFileOrDie(s + "/Zeta", "capital Z sorts first\n");
  testing::WriteFileOrDie(s + "/secret", "owned by 1234\n");
  if (::geteuid() == 0 && ::chown((s + "/secret").c_str(), 1234, 1234) != 0) {
    return "chown secret";
  }
  if (::chmod((s + "/secret").c_str(), 0640) != 0) return "chmod secret";
  if (!mk(s + "/etc")) return "mkdir etc";
  testing::WriteFileOrDie(s + "/etc/hostname", "pc1\n");
  if (!mk(s + "/nested") || !mk(s + "/nested/a") || !mk(s + "/nested/a/b")) {
    return "mkdir nested";
  }
  testing::WriteFileOrDie(s + "/nested/a/b/deep.txt", "deep\n");
  testing::WriteFileOrDie(s + "/nested/a/.hidden", "hidden\n");
  if (::symlink("../../../etc/passwd", (s + "/outside").c_str()) != 0 ||
      ::symlink("/etc", (s + "/nested/dirlink").c_str()) != 0 ||
      ::symlink("a/b/deep.txt", (s + "/nested/filelink").c_str()) != 0) {
    return "symlink";
  }
  if (::mkfifo((s + "/fifo").c_str(), 0600) != 0) return "mkfifo";
  if (::geteuid() == 0 &&
      ::mknod((s + "/devnull").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
    return "mknod";
  }
  SetTimes(s);
  return "";
}

// The image: GPT, partition 1 ext4 from `src`, 2 swap, 3 ext4 whose
// directory /d has a garbage block.
std::string BuildImage(const std::string& work) {
  Shared& s = *g_shared;
  s.image = work + "/disk.img";
  {
    int fd = ::open(s.image.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::ftruncate(fd, kImageSize) != 0) return "image";
    ::close(fd);
  }
  auto sectors = [](uint64_t mib) { return mib * kMiB / kSector; };
  std::string table = StrCat(
      "label: gpt\n", "start=", sectors(kP1Start), ", size=", sectors(kP1Size),
      ", type=L\n", "start=", sectors(kP2Start), ", size=", sectors(kP2Size),
      ", type=S\n", "start=", sectors(kP3Start), ", size=", sectors(kP3Size),
      ", type=L\n");
  testing::WriteFileOrDie(work + "/table", table);
  if (Shell(StrCat("sfdisk -q ", s.image, " < ", work, "/table")) != 0) {
    return "sfdisk";
  }
  if (Shell(StrCat("mke2fs -q -F -t ext4 -b 4096 -L ", kLabel, " -U ", kUuid,
                   " -d ", s.src, " -E offset=", kP1Start * kMiB, " ", s.image,
                   " ", kP1Size * kMiB / 4096)) != 0) {
    return "mke2fs partition 1";
  }
  std::string swap = work + "/swap.img";
  std::string damaged = work + "/damaged.img";
  std::string src3 = work + "/src3";
  if (::mkdir(src3.c_str(), 0755) != 0 ||
      ::mkdir((src3 + "/d").c_str(), 0755) != 0 ||
      ::mkdir((src3 + "/ok").c_str(), 0755) != 0) {
    return "mkdir src3";
  }
  for (int i = 0; i < 20; ++i) {
    testing::WriteFileOrDie(StrCat(src3, "/d/file-", i), "x\n");
  }
  testing::WriteFileOrDie(src3 + "/ok/fine.txt", "fine\n");
  if (Shell(StrCat("truncate -s ", kP2Size * kMiB, " ", swap, " && mkswap -q ",
                   swap)) != 0) {
    return "mkswap";
  }
  if (Shell(StrCat("truncate -s ", kP3Size * kMiB, " ", damaged,
                   " && mke2fs -q -F -t ext4 -b 4096 -O metadata_csum -d ",
                   src3, " ", damaged)) != 0) {
    return "mke2fs partition 3";
  }
  // The block of /d's entries, overwritten with garbage: its checksum fails.
  std::string blocks = RunOutput(StrCat("debugfs -R 'blocks /d' ", damaged));
  uint64_t block = std::strtoull(blocks.c_str(), nullptr, 10);
  if (block == 0) return "debugfs: no block for /d";
  {
    std::string garbage = testing::PseudoRandomBytes(4096, 99);
    int fd = ::open(damaged.c_str(), O_WRONLY);
    if (fd < 0 || ::pwrite(fd, garbage.data(), garbage.size(),
                           static_cast<off_t>(block * 4096)) != 4096) {
      return "corrupting /d";
    }
    ::close(fd);
  }
  for (const auto& [file, start] :
       {std::pair{swap, kP2Start}, std::pair{damaged, kP3Start}}) {
    if (Shell(StrCat("dd if=", file, " of=", s.image, " bs=1M seek=", start,
                     " conv=notrunc status=none")) != 0) {
      return "dd " + file;
    }
  }
  return "";
}

std::string BackUp(const std::string& work) {
  Shared& s = *g_shared;
  s.repo = work + "/repo";
  s.secret.assign(DataKey::kSize, '\0');
  for (size_t i = 0; i < s.secret.size(); ++i) {
    s.secret[i] = static_cast<char>(11 + 7 * i);
  }
  auto key = DataKey::FromSecret(s.secret);
  if (!key.ok()) return key.status().ToString();
  RepositoryOptions o;
  o.create_if_missing = true;
  auto repo = Repository::Open(s.repo, o);
  if (!repo.ok()) return repo.status().ToString();
  BackupRequest req;
  req.source_path = s.image;
  req.source_name = "pc1";
  req.backup_id = kBackup;
  req.chunk_size = 64 << 10;
  req.key = &*key;
  auto session = (*repo)->BeginBackup();
  auto r = RunBackup(req, session.get());
  if (!r.ok()) return r.status().ToString();
  return "";  // the repository closes (and unlocks) here
}

class SandboxDiskTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_shared = new Shared;
    Shared& s = *g_shared;
    // libguestfs reads these; KVM is not usable on the test machines.
    ::setenv("LIBGUESTFS_BACKEND", "direct", 0);
    ::setenv("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg", 0);
    for (const char* tool :
         {"sfdisk", "mke2fs", "mkswap", "debugfs", "nbdkit"}) {
      if (!HaveTool(tool)) {
        s.skip = StrCat(tool, " is not installed");
        return;
      }
    }
    auto plugin = FindNbdPlugin();
    if (!plugin.ok()) {
      s.skip = std::string(ToStd(plugin.status().message()));
      return;
    }
    s.dir = std::make_unique<testing::ScratchDir>();
    const std::string work = s.dir->path();
    s.big = testing::PseudoRandomBytes(kBigSize, 7);
    s.src = work + "/src";
    s.error = WriteSourceTree(s.src);
    if (s.error.empty()) s.error = BuildImage(work);
    if (s.error.empty()) s.error = BackUp(work);
    if (!s.error.empty()) return;
    s.chunks_before = SnapshotTree(s.repo + "/chunks");

    NbdExportOptions eo;
    eo.store = s.repo;
    eo.backup_id = kBackup;
    eo.key_secret = s.secret;
    eo.runtime_dir = work;
    auto nbd = NbdExport::Start(eo);
    if (!nbd.ok()) {
      s.error = StrCat("NbdExport::Start: ", nbd.status().ToString());
      return;
    }
    s.nbd = *std::move(nbd);

    SandboxDiskOptions so;
    so.nbd_socket = s.nbd->socket_path();
    so.call_timeout = kCallTimeout;
    auto started = Clock::now();
    auto disk = SandboxDisk::Open(so);
    s.launch_seconds = Seconds(Clock::now() - started);
    if (!disk.ok()) {
      s.error = StrCat("SandboxDisk::Open: ", disk.status().ToString());
      return;
    }
    s.disk = *std::move(disk);
    started = Clock::now();
    auto catalogue = s.disk->Catalogue(kBackup);
    s.catalogue_seconds = Seconds(Clock::now() - started);
    if (!catalogue.ok()) {
      s.error = StrCat("Catalogue: ", catalogue.status().ToString());
      return;
    }
    s.catalogue = *std::move(catalogue);
    std::printf("[ timing ] appliance launch %.1f s, catalogue %.2f s\n",
                s.launch_seconds, s.catalogue_seconds);
    for (const auto* list :
         {&s.catalogue.filesystems(), &s.catalogue.skipped()}) {
      for (const auto& fs : *list) {
        std::printf("[ catalog] partition %u %s: %d entries; %s\n",
                    fs.partition(), fs.fs_type().c_str(), fs.entries_size(),
                    fs.error().c_str());
      }
    }
  }

  static void TearDownTestSuite() {
    if (g_shared == nullptr) return;
    g_shared->disk.reset();
    if (g_shared->nbd) g_shared->nbd->Stop().IgnoreError();
    delete g_shared;
    g_shared = nullptr;
  }

  void SetUp() override {
    if (!s().skip.empty()) GTEST_SKIP() << s().skip;
    ASSERT_TRUE(s().error.empty()) << s().error;
    ASSERT_NE(s().disk, nullptr);
  }

  static Shared& s() { return *g_shared; }

  // The whole of [offset, offset + length) of `path` and the piece sizes.
  static Status ReadAll(uint32_t partition, const std::string& path,
                        uint64_t offset, uint64_t length, std::string* out,
                        std::vector<size_t>* pieces = nullptr) {
    out->clear();
    return s().disk->Read(partition, path, offset, length,
                          [&](std::string_view data) {
                            out->append(data);
                            if (pieces != nullptr)
                              pieces->push_back(data.size());
                            return absl::OkStatus();
                          });
  }
};

TEST_F(SandboxDiskTest, OpenRefusesBadOptions) {
  SandboxDiskOptions o;
  EXPECT_EQ(SandboxDisk::Open(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.nbd_socket = s().dir->Sub("absent.sock");
  EXPECT_EQ(SandboxDisk::Open(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.nbd_socket = s().image;  // not a socket
  Status st = SandboxDisk::Open(o).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("not a Unix socket"), absl::string_view::npos)
      << st;
  o.nbd_socket = s().nbd->socket_path();
  o.launch_timeout = std::chrono::seconds(0);
  EXPECT_EQ(SandboxDisk::Open(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.launch_timeout = std::chrono::seconds(300);
  o.limits.max_depth = -1;
  EXPECT_EQ(SandboxDisk::Open(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SandboxDiskTest, CataloguesTheFileSystemLikeLstat) {
  const v1::FileCatalogue& c = s().catalogue;
  EXPECT_EQ(c.backup_id(), kBackup);
  EXPECT_GT(c.created_unix_us(), 0);
  const v1::FileSystemCatalogue* fs = FindFs(c.filesystems(), 1);
  ASSERT_NE(fs, nullptr) << c.DebugString();
  EXPECT_EQ(fs->fs_type(), "ext4");
  EXPECT_EQ(fs->offset(), kP1Start * kMiB);
  EXPECT_EQ(fs->size(), kP1Size * kMiB);
  EXPECT_EQ(fs->label(), kLabel);
  EXPECT_EQ(fs->uuid(), kUuid);
  EXPECT_EQ(fs->error(), "");
  EXPECT_FALSE(fs->truncated());

  // Every source entry, and lost+found, which mke2fs adds.
  std::map<std::string, struct stat> tree = LstatTree(s().src);
  std::set<std::string> expected;
  for (const auto& [path, st] : tree) expected.insert(path);
  expected.insert("/lost+found");
  std::set<std::string> got;
  for (const auto& e : fs->entries()) got.insert(e.path());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(static_cast<size_t>(fs->entries_size()), got.size());  // no dups

  // Depth-first pre-order, children sorted by name bytes.
  ASSERT_GT(fs->entries_size(), 0);
  EXPECT_EQ(fs->entries(0).path(), "/");
  for (int i = 1; i < fs->entries_size(); ++i) {
    EXPECT_LT(Components(fs->entries(i - 1).path()),
              Components(fs->entries(i).path()))
        << fs->entries(i - 1).path() << " before " << fs->entries(i).path();
  }

  auto entries = ByPath(*fs);
  for (const auto& [path, st] : tree) {
    SCOPED_TRACE(path);
    const v1::FileEntry* e = entries[path];
    ASSERT_NE(e, nullptr);
    EXPECT_FALSE(e->extents_complete());
    EXPECT_EQ(e->extents_size(), 0);
    switch (st.st_mode & S_IFMT) {
      case S_IFREG:
        EXPECT_EQ(e->type(), v1::FileEntry::REGULAR);
        EXPECT_EQ(e->size(), static_cast<uint64_t>(st.st_size));
        break;
      case S_IFDIR:
        EXPECT_EQ(e->type(), v1::FileEntry::DIRECTORY);
        break;
      case S_IFLNK:
        EXPECT_EQ(e->type(), v1::FileEntry::SYMLINK);
        EXPECT_EQ(e->size(), static_cast<uint64_t>(st.st_size));
        EXPECT_EQ(e->symlink_target(),
                  ReadLinkOrDie(path == "/" ? s().src : s().src + path));
        break;
      case S_IFIFO:
        EXPECT_EQ(e->type(), v1::FileEntry::FIFO);
        break;
      case S_IFCHR:
        EXPECT_EQ(e->type(), v1::FileEntry::CHAR_DEVICE);
        EXPECT_EQ(e->rdev(), static_cast<uint64_t>(st.st_rdev));
        break;
      default:
        ADD_FAILURE() << "unexpected type in the source tree";
    }
    if (path == "/") continue;  // mke2fs -d gives the root its own times
    EXPECT_EQ(e->mode(), st.st_mode & 07777);
    EXPECT_EQ(e->uid(), st.st_uid);
    EXPECT_EQ(e->gid(), st.st_gid);
    EXPECT_EQ(e->mtime_ns(),
              int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec);
    EXPECT_GT(e->inode(), 0u);
    EXPECT_GE(e->nlink(), 1u);
  }
  const v1::FileEntry* secret = entries["/secret"];
  ASSERT_NE(secret, nullptr);
  EXPECT_EQ(secret->mode(), 0640u);
  if (::geteuid() == 0) {
    EXPECT_EQ(secret->uid(), 1234u);
    EXPECT_EQ(secret->gid(), 1234u);
  }
  ASSERT_NE(entries["/outside"], nullptr);
  EXPECT_EQ(entries["/outside"]->symlink_target(), "../../../etc/passwd");
  ASSERT_NE(entries["/big"], nullptr);
  EXPECT_EQ(entries["/big"]->size(), kBigSize);
  ASSERT_NE(entries["/" + kBadName], nullptr);  // the name's bytes, as is
}

TEST_F(SandboxDiskTest, SkipsSwapWithAReason) {
  const v1::FileCatalogue& c = s().catalogue;
  EXPECT_EQ(FindFs(c.filesystems(), 2), nullptr);
  const v1::FileSystemCatalogue* swap = FindFs(c.skipped(), 2);
  ASSERT_NE(swap, nullptr) << c.DebugString();
  EXPECT_EQ(swap->fs_type(), "swap");
  EXPECT_EQ(swap->offset(), kP2Start * kMiB);
  EXPECT_EQ(swap->size(), kP2Size * kMiB);
  EXPECT_NE(swap->error().find("partition 2"), std::string::npos)
      << swap->error();
  EXPECT_NE(swap->error().find("swap"), std::string::npos) << swap->error();
  EXPECT_EQ(swap->entries_size(), 0);
  std::string data;
  EXPECT_EQ(ReadAll(2, "/x", 0, 0, &data).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadAll(9, "/x", 0, 0, &data).code(), absl::StatusCode::kNotFound);
}

TEST_F(SandboxDiskTest, DamagedDirectoryIsAnErrorNamingThePartition) {
  const v1::FileSystemCatalogue* fs = FindFs(s().catalogue.filesystems(), 3);
  ASSERT_NE(fs, nullptr) << s().catalogue.DebugString();
  EXPECT_EQ(fs->fs_type(), "ext4");
  EXPECT_EQ(fs->error().rfind("partition 3: ", 0), 0u) << fs->error();
  EXPECT_NE(fs->error().find("/d"), std::string::npos) << fs->error();
  // The rest of the file system is catalogued, and still readable.
  auto entries = ByPath(*fs);
  EXPECT_NE(entries["/d"], nullptr);
  EXPECT_EQ(entries["/d/file-1"], nullptr);
  ASSERT_NE(entries["/ok/fine.txt"], nullptr);
  std::string data;
  ASSERT_TRUE(ReadAll(3, "/ok/fine.txt", 0, 0, &data).ok());
  EXPECT_EQ(data, "fine\n");
  Status st = ReadAll(3, "/d/file-1", 0, 0, &data);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_NE(st.message().find("partition 3"), absl::string_view::npos) << st;
  // The appliance survived it.
  EXPECT_GT(s().disk->appliance_pid(), 0);
  ASSERT_TRUE(ReadAll(1, "/hello.txt", 0, 0, &data).ok());
  EXPECT_EQ(data, "hello sandbox\n");
}

TEST_F(SandboxDiskTest, ReadsFilesByteExact) {
  std::string data;
  std::vector<size_t> pieces;
  ASSERT_TRUE(ReadAll(1, "/big", 0, 0, &data, &pieces).ok());
  EXPECT_TRUE(data == s().big) << "content of /big differs";
  EXPECT_EQ(pieces.size(), 4u);  // 3 MiB + 12345 in pieces of 1 MiB
  for (size_t n : pieces) EXPECT_LE(n, kMiB);

  // A range across piece boundaries, one clipped at the end, the end.
  ASSERT_TRUE(ReadAll(1, "/big", kMiB - 7, 2 * kMiB + 100, &data).ok());
  EXPECT_TRUE(data == s().big.substr(kMiB - 7, 2 * kMiB + 100));
  ASSERT_TRUE(ReadAll(1, "/big", kBigSize - 10, 1000, &data).ok());
  EXPECT_TRUE(data == s().big.substr(kBigSize - 10));
  ASSERT_TRUE(ReadAll(1, "/big", kBigSize, 0, &data).ok());
  EXPECT_EQ(data, "");
  EXPECT_EQ(ReadAll(1, "/big", kBigSize + 1, 0, &data).code(),
            absl::StatusCode::kOutOfRange);

  ASSERT_TRUE(ReadAll(1, "/etc/hostname", 0, 0, &data).ok());
  EXPECT_EQ(data, "pc1\n");
  ASSERT_TRUE(ReadAll(1, "etc//hostname/", 0, 0, &data).ok());  // normalized
  EXPECT_EQ(data, "pc1\n");
  ASSERT_TRUE(ReadAll(1, "/empty", 0, 0, &data).ok());
  EXPECT_EQ(data, "");
  ASSERT_TRUE(ReadAll(1, "/" + kBadName, 0, 0, &data).ok());
  EXPECT_EQ(data, "a name that is not UTF-8\n");
  ASSERT_TRUE(ReadAll(1, "/nested/a/b/deep.txt", 1, 3, &data).ok());
  EXPECT_EQ(data, "eep");

  // The sink's error ends the read.
  int calls = 0;
  Status st = s().disk->Read(1, "/big", 0, 0, [&](std::string_view) {
    ++calls;
    return absl::CancelledError("enough");
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 1);
}

TEST_F(SandboxDiskTest, RefusesSymlinksDirectoriesAndTraversal) {
  std::string data;
  // A symlink pointing outside, and one to a file: never followed.
  Status st = ReadAll(1, "/outside", 0, 0, &data);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("../../../etc/passwd"), absl::string_view::npos)
      << st;
  st = ReadAll(1, "/nested/filelink", 0, 0, &data);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  // A path through a symlinked directory (the appliance would follow it to
  // the file system's /etc).
  st = ReadAll(1, "/nested/dirlink/hostname", 0, 0, &data);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("/nested/dirlink"), absl::string_view::npos)
      << st;
  // Directories and other non-regular files.
  EXPECT_EQ(ReadAll(1, "/nested", 0, 0, &data).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadAll(1, "/", 0, 0, &data).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadAll(1, "/fifo", 0, 0, &data).code(),
            absl::StatusCode::kFailedPrecondition);
  // Traversal, as NormalizeBrowsePath refuses it.
  for (const char* bad :
       {"/../etc/passwd", "/nested/../hello.txt", "..", "/etc/../../x"}) {
    st = ReadAll(1, bad, 0, 0, &data);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("path traversal"), absl::string_view::npos)
        << st;
  }
  // Missing paths.
  EXPECT_EQ(ReadAll(1, "/missing", 0, 0, &data).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadAll(1, "/hello.txt/x", 0, 0, &data).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(data, "");
}

// The host path on the same image: CatalogueFileSystem over a read-only
// loop mount (root only). Same paths, types, sizes, modes, owners, times.
TEST_F(SandboxDiskTest, MatchesTheHostPathCatalogue) {
  if (::geteuid() != 0) GTEST_SKIP() << "loop-mounting needs root";
  std::string mnt = s().dir->Sub("mnt");
  ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
  if (Shell(StrCat("mount -t ext4 -o ro,loop,noload,offset=", kP1Start * kMiB,
                   ",sizelimit=", kP1Size * kMiB, " ", s().image, " ", mnt)) !=
      0) {
    GTEST_SKIP() << "cannot loop-mount the image here";
  }
  FileSystemLocation where;
  where.partition = 1;
  where.offset = kP1Start * kMiB;
  where.size = kP1Size * kMiB;
  where.fs_type = "ext4";
  auto started = Clock::now();
  auto host = CatalogueFileSystem(mnt, where);
  double host_seconds = Seconds(Clock::now() - started);
  Shell(StrCat("umount ", mnt));
  ASSERT_TRUE(host.ok()) << host.status();
  std::printf("[ timing ] host path catalogue of partition 1: %.3f s\n",
              host_seconds);
  RecordProperty("host_catalogue_ms", static_cast<int>(host_seconds * 1000));
  RecordProperty("sandbox_catalogue_ms",
                 static_cast<int>(s().catalogue_seconds * 1000));
  RecordProperty("launch_ms", static_cast<int>(s().launch_seconds * 1000));

  const v1::FileSystemCatalogue* fs = FindFs(s().catalogue.filesystems(), 1);
  ASSERT_NE(fs, nullptr);
  EXPECT_EQ(host->error(), "");
  ASSERT_EQ(host->entries_size(), fs->entries_size());
  for (int i = 0; i < fs->entries_size(); ++i) {
    const v1::FileEntry& a = fs->entries(i);
    const v1::FileEntry& b = host->entries(i);
    SCOPED_TRACE(a.path());
    EXPECT_EQ(a.path(), b.path());  // same order, too
    EXPECT_EQ(a.type(), b.type());
    EXPECT_EQ(a.size(), b.size());
    EXPECT_EQ(a.mode(), b.mode());
    EXPECT_EQ(a.uid(), b.uid());
    EXPECT_EQ(a.gid(), b.gid());
    EXPECT_EQ(a.mtime_ns(), b.mtime_ns());
    EXPECT_EQ(a.atime_ns(), b.atime_ns());
    EXPECT_EQ(a.ctime_ns(), b.ctime_ns());
    EXPECT_EQ(a.inode(), b.inode());
    EXPECT_EQ(a.nlink(), b.nlink());
    EXPECT_EQ(a.rdev(), b.rdev());
    EXPECT_EQ(a.symlink_target(), b.symlink_target());
  }
}

// Declared last: everything above only read. Catalogue again and read, then
// compare every chunk file with the copy taken before the appliance started.
TEST_F(SandboxDiskTest, LeavesTheRepositoryUnchanged) {
  auto again = s().disk->Catalogue(kBackup);
  ASSERT_TRUE(again.ok()) << again.status();
  const v1::FileSystemCatalogue* a = FindFs(again->filesystems(), 1);
  const v1::FileSystemCatalogue* b = FindFs(s().catalogue.filesystems(), 1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->entries_size(), b->entries_size());
  std::string data;
  ASSERT_TRUE(ReadAll(1, "/big", 0, 0, &data).ok());
  ASSERT_FALSE(s().chunks_before.empty());
  EXPECT_TRUE(SnapshotTree(s().repo + "/chunks") == s().chunks_before)
      << "the repository's chunk files changed";
}

// Declared after every other test: it kills the shared appliance. A stopped
// qemu stands for an appliance kernel stuck on a damaged file system: the
// call returns Unavailable after call_timeout instead of hanging, and so does
// everything after it.
TEST_F(SandboxDiskTest, AHungApplianceIsStoppedNotWaitedFor) {
  const pid_t pid = s().disk->appliance_pid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  auto started = Clock::now();
  std::string data;
  Status st = ReadAll(1, "/hello.txt", 0, 0, &data);
  const double waited = Seconds(Clock::now() - started);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_NE(st.message().find("did not answer within 30 s"),
            absl::string_view::npos)
      << st;
  EXPECT_NE(st.message().find("partition 1"), absl::string_view::npos) << st;
  EXPECT_GE(waited, kCallTimeout.count() - 1.0);
  EXPECT_LT(waited, kCallTimeout.count() + 30.0);
  const char state = ProcessState(pid);
  EXPECT_TRUE(state == '-' || state == 'Z' || state == 'X')
      << "qemu is still there, state " << state;
  EXPECT_EQ(s().disk->appliance_pid(), -1);
  EXPECT_EQ(s().disk->Catalogue(kBackup).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReadAll(1, "/hello.txt", 0, 0, &data).code(),
            absl::StatusCode::kUnavailable);
  started = Clock::now();
  s().disk.reset();  // shutting a dead appliance down does not hang either
  EXPECT_LT(Seconds(Clock::now() - started), 35.0);
}

}  // namespace
}  // namespace cairn
