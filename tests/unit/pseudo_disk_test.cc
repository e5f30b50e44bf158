// Tests of the media agent's pseudo-disk on real components: a partitioned
// disk image built by sfdisk/mke2fs/mkfs.fat/mkswap/mkfs.btrfs, served by
// `nbdkit --readonly file` on a Unix socket (independent of Cairn's plugin),
// attached with nbdfuse, loop devices and mount(2). They need root, /dev/fuse,
// /dev/loop-control, nbdkit and nbdfuse, and skip (with the reason) without.
//
// The helpers in cairn::pdtest are shared with mount_sessions_test.cc (same
// binary), which declares them.
#include "media_agent/pseudo_disk.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "common/coding.h"
#include "common/crypto.h"
#include "common/env.h"
#include "common/strings.h"
#include "media_agent/partition_probe.h"
#include "tests/testing/test_util.h"

extern char** environ;

namespace cairn::pdtest {

// ---- Helpers (also used by mount_sessions_test.cc) --------------------------

struct TestDisk {
  std::string path;  // the image file
  uint64_t size = 0;
  // partition number -> (offset, size) in bytes, from sfdisk -d
  std::map<uint32_t, std::pair<uint64_t, uint64_t>> parts;
  bool has_vfat = false;
  bool has_btrfs = false;
  // Files written into the ext4 partition (relative path -> content) and the
  // btrfs partition.
  std::map<std::string, std::string> ext4_files;
  std::map<std::string, std::string> btrfs_files;
};

bool HaveProgram(const std::string& name) {
  for (const char* dir : {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                          "/usr/bin", "/sbin", "/bin"}) {
    if (::access(StrCat(dir, "/", name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Why the pseudo-disk cannot run here; empty if it can.
std::string SkipReason() {
  if (::geteuid() != 0) return "needs root (loop devices and mount(2))";
  if (::access("/dev/fuse", R_OK | W_OK) != 0) return "/dev/fuse is missing";
  if (::access("/dev/loop-control", R_OK | W_OK) != 0) {
    return "/dev/loop-control is missing";
  }
  for (const char* p :
       {"nbdkit", "nbdfuse", "fusermount3", "mke2fs", "sfdisk", "mkswap"}) {
    if (!HaveProgram(p)) return StrCat(p, " is not installed");
  }
  return "";
}

int RunShell(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* f = ::popen(full.c_str(), "r");
  if (f == nullptr) return -1;
  char buf[4096];
  size_t n;
  std::string out;
  while ((n = ::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int ws = ::pclose(f);
  if (output != nullptr) *output = out;
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

bool Shell(const std::string& cmd, std::string* error) {
  std::string out;
  int rc = RunShell(cmd, &out);
  if (rc != 0) {
    *error = StrCat("`", cmd, "` failed (", rc, "): ", out);
    return false;
  }
  return true;
}

void WriteSparseFile(const std::string& path, const std::string& head,
                     uint64_t hole_end, const std::string& tail,
                     uint64_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
  ASSERT_EQ(::pwrite(fd, head.data(), head.size(), 0),
            static_cast<ssize_t>(head.size()));
  ASSERT_EQ(::pwrite(fd, tail.data(), tail.size(), hole_end),
            static_cast<ssize_t>(tail.size()));
  ::close(fd);
}

// Builds a 96 MiB sparse MBR disk in `work`:
//   1  ext4 "cairn-root" 40 MiB, from files with a symlink, a 0640 file of
//      uid 1234 and a sparse file
//   2  vfat 16 MiB (if mkfs.fat is installed; else left empty)
//   3  extended container
//   5  swap 8 MiB
//   6  btrfs "cairn-btrfs" (if mkfs.btrfs is installed; else left empty)
bool BuildTestDisk(const std::string& work, TestDisk* disk,
                   std::string* error) {
  std::string src = JoinPath(work, "src");
  std::string bsrc = JoinPath(work, "bsrc");
  std::filesystem::create_directories(JoinPath(src, "dir"));
  std::filesystem::create_directories(bsrc);
  disk->ext4_files = {
      {"hello.txt", "hello from the backup\n"},
      {"dir/nested.txt", testing::TextLikeBytes(70000, 4)},
      {"big.bin", testing::PseudoRandomBytes(3 << 20, 5)},
      {"secret.txt", "only for uid 1234\n"},
  };
  for (const auto& [rel, content] : disk->ext4_files) {
    testing::WriteFileOrDie(JoinPath(src, rel), content);
  }
  std::string secret = JoinPath(src, "secret.txt");
  if (::chown(secret.c_str(), 1234, 1234) != 0 ||
      ::chmod(secret.c_str(), 0640) != 0) {
    *error = "cannot chown/chmod the source file (root needed)";
    return false;
  }
  if (::symlink("hello.txt", JoinPath(src, "link").c_str()) != 0) {
    *error = "symlink failed";
    return false;
  }
  std::string head = testing::PseudoRandomBytes(4096, 6);
  std::string tail = testing::PseudoRandomBytes(65536, 7);
  WriteSparseFile(JoinPath(src, "sparse.img"), head, 6 << 20, tail, 8 << 20);
  std::string sparse(8 << 20, '\0');
  sparse.replace(0, head.size(), head);
  sparse.replace(6 << 20, tail.size(), tail);
  disk->ext4_files["sparse.img"] = sparse;

  disk->path = JoinPath(work, "disk.img");
  disk->size = 96ull << 20;
  std::string img = disk->path;
  if (!Shell(StrCat("truncate -s 96M ", img), error)) return false;
  if (!Shell(StrCat("printf 'label: dos\\nstart=2048, size=40MiB, type=83\\n"
                    "size=16MiB, type=c\\ntype=5\\nsize=8MiB, type=82\\n"
                    "type=83\\n' | sfdisk -q ",
                    img),
             error)) {
    return false;
  }
  std::string dump;
  if (RunShell(StrCat("sfdisk -d ", img), &dump) != 0) {
    *error = "sfdisk -d failed: " + dump;
    return false;
  }
  std::regex line_re(
      R"(disk\.img(\d+) : start=\s*(\d+), size=\s*(\d+), type=(\w+))");
  for (std::sregex_iterator it(dump.begin(), dump.end(), line_re), end;
       it != end; ++it) {
    uint32_t n = static_cast<uint32_t>(std::stoul((*it)[1]));
    disk->parts[n] = {std::stoull((*it)[2]) * 512, std::stoull((*it)[3]) * 512};
  }
  for (uint32_t n : {1u, 2u, 3u, 5u, 6u}) {
    if (!disk->parts.count(n)) {
      *error = StrCat("partition ", n, " missing in: ", dump);
      return false;
    }
  }
  auto [off1, size1] = disk->parts[1];
  if (!Shell(StrCat("mke2fs -q -F -t ext4 -L cairn-root -d ", src,
                    " -E offset=", off1, " ", img, " ", size1 / 1024, "k"),
             error)) {
    return false;
  }
  auto [off2, size2] = disk->parts[2];
  if (HaveProgram("mkfs.fat")) {
    if (!Shell(StrCat("mkfs.fat -n CAIRNFAT --offset=", off2 / 512, " ", img,
                      " ", size2 / 1024, " >/dev/null"),
               error)) {
      return false;
    }
    disk->has_vfat = true;
  }
  auto [off5, size5] = disk->parts[5];
  std::string swap = JoinPath(work, "swap.tmp");
  if (!Shell(StrCat("truncate -s ", size5, " ", swap,
                    " && mkswap -L "
                    "cairn-swap ",
                    swap, " >/dev/null 2>&1 && dd if=", swap, " of=", img,
                    " bs=1M oflag=seek_bytes seek=", off5,
                    " conv=notrunc status=none && rm ", swap),
             error)) {
    return false;
  }
  auto [off6, size6] = disk->parts[6];
  if (HaveProgram("mkfs.btrfs")) {
    disk->btrfs_files = {{"btrfs.txt", "a file on btrfs\n"},
                         {"data.bin", testing::PseudoRandomBytes(300000, 8)}};
    for (const auto& [rel, content] : disk->btrfs_files) {
      testing::WriteFileOrDie(JoinPath(bsrc, rel), content);
    }
    std::string b = JoinPath(work, "btrfs.tmp");
    if (!Shell(StrCat("truncate -s ", size6, " ", b,
                      " && mkfs.btrfs -q -f -M -L cairn-btrfs -r ", bsrc, " ",
                      b, " >/dev/null 2>&1 && dd if=", b, " of=", img,
                      " bs=1M oflag=seek_bytes seek=", off6,
                      " conv=notrunc,sparse status=none && rm ", b),
               error)) {
      return false;
    }
    disk->has_btrfs = true;
  }
  return true;
}

std::string HashFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  crypto::Sha256Stream h;
  std::string buf(1 << 20, '\0');
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.Update(std::string_view(buf.data(), static_cast<size_t>(f.gcount())));
  }
  auto d = h.Finish();
  return HexEncode(
      std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

// Relative path -> SHA-256 of every regular file below `dir`.
std::map<std::string, std::string> HashTree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    out[std::filesystem::relative(e.path(), dir).string()] =
        HashFile(e.path().string());
  }
  return out;
}

// A /proc or /sys file, read to its end (false if it cannot be opened).
bool ReadProcFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

// Mount points at or below `dir` in /proc/self/mountinfo.
std::vector<std::string> MountsBelow(const std::string& dir) {
  std::vector<std::string> out;
  std::string text = testing::ReadFileOrDie("/proc/self/mountinfo");
  for (std::string_view line : SplitLines(text)) {
    size_t p = 0;
    for (int i = 0; i < 4; ++i) p = line.find(' ', p) + 1;
    std::string_view mp = line.substr(p, line.find(' ', p) - p);
    if (mp == dir ||
        (mp.size() > dir.size() && mp.substr(0, dir.size()) == dir &&
         mp[dir.size()] == '/')) {
      out.emplace_back(mp);
    }
  }
  return out;
}

// Loop devices whose backing file is below `dir`.
std::vector<std::string> LoopsBackedBelow(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("/sys/block")) {
    std::string name = e.path().filename().string();
    if (name.rfind("loop", 0) != 0) continue;
    std::string backing;
    if (!ReadProcFile(StrCat("/sys/block/", name, "/loop/backing_file"),
                      &backing)) {
      continue;
    }
    if (backing.find(dir) != std::string::npos) out.push_back(name);
  }
  return out;
}

// Live (not zombie) processes whose command line mentions `text`.
std::vector<std::string> ProcessesMentioning(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string pid = e.path().filename().string();
    if (pid.empty() || !std::isdigit(static_cast<unsigned char>(pid[0]))) {
      continue;
    }
    std::string stat, cmdline;
    if (!ReadProcFile(StrCat("/proc/", pid, "/stat"), &stat) ||
        !ReadProcFile(StrCat("/proc/", pid, "/cmdline"), &cmdline)) {
      continue;
    }
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.size() ||
        stat[paren + 2] == 'Z') {
      continue;
    }
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(text) != std::string::npos) {
      out.push_back(StrCat(pid, ": ", cmdline));
    }
  }
  return out;
}

// What a mounted copy of the ext4 partition must show.
void ExpectExt4Contents(const std::string& mount, const TestDisk& disk) {
  for (const auto& [rel, content] : disk.ext4_files) {
    std::string got = testing::ReadFileOrDie(JoinPath(mount, rel));
    EXPECT_TRUE(got == content) << rel << " differs (" << got.size() << " vs "
                                << content.size() << " bytes)";
  }
  struct stat st;
  ASSERT_EQ(::stat(JoinPath(mount, "secret.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 1234u);
  char target[256];
  ssize_t n =
      ::readlink(JoinPath(mount, "link").c_str(), target, sizeof(target));
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(target, static_cast<size_t>(n)), "hello.txt");
  ASSERT_EQ(::stat(JoinPath(mount, "sparse.img").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8 << 20);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the hole was not preserved";

  // Read-only: creating, writing and removing all fail with EROFS.
  errno = 0;
  EXPECT_LT(::open(JoinPath(mount, "new.txt").c_str(),
                   O_WRONLY | O_CREAT | O_CLOEXEC, 0644),
            0);
  EXPECT_EQ(errno, EROFS);
  errno = 0;
  EXPECT_LT(::open(JoinPath(mount, "hello.txt").c_str(), O_WRONLY | O_CLOEXEC),
            0);
  EXPECT_EQ(errno, EROFS);
  errno = 0;
  EXPECT_NE(::unlink(JoinPath(mount, "hello.txt").c_str()), 0);
  EXPECT_EQ(errno, EROFS);
}

// Everything a detached pseudo-disk below `dir` must have let go of.
void ExpectNothingLeftBelow(const std::string& dir) {
  EXPECT_TRUE(MountsBelow(dir).empty())
      << "mounts left: " << ::testing::PrintToString(MountsBelow(dir));
  EXPECT_TRUE(LoopsBackedBelow(dir).empty())
      << "loop devices left: "
      << ::testing::PrintToString(LoopsBackedBelow(dir));
  EXPECT_TRUE(ProcessesMentioning(dir).empty())
      << "processes left: "
      << ::testing::PrintToString(ProcessesMentioning(dir));
}

// For the test log: what became of each partition.
void PrintFileSystems(const PseudoDisk& d) {
  for (const auto& fs : d.filesystems()) {
    std::cout << "  " << DescribePartition(fs.partition) << ": "
              << (fs.status.ok() ? "mounted at " + fs.mount_path + " from " +
                                       fs.loop_device
                                 : fs.status.ToString())
              << "\n";
  }
}

const MountedFileSystem* Find(const PseudoDisk& d, uint32_t number) {
  for (const auto& fs : d.filesystems()) {
    if (fs.partition.number == number) return &fs;
  }
  return nullptr;
}

}  // namespace cairn::pdtest

namespace cairn {
namespace {

using namespace pdtest;  // NOLINT: test helpers

// `nbdkit --foreground --readonly` serving a plugin on a Unix socket.
class NbdkitServer {
 public:
  // args: plugin and its parameters, e.g. {"file", "/path/disk.img"}.
  bool Start(const std::string& dir, const std::vector<std::string>& plugin,
             std::string* error) {
    socket_ = JoinPath(dir, "nbd.sock");
    std::string pid_file = JoinPath(dir, "nbdkit.pid");
    std::string log = JoinPath(dir, "nbdkit.log");
    std::vector<std::string> args = {
        "/usr/bin/nbdkit", "--foreground", "--readonly", "-U",
        socket_,           "-P",           pid_file};
    if (!HaveProgram("nbdkit")) {
      *error = "no nbdkit";
      return false;
    }
    if (::access(args[0].c_str(), X_OK) != 0) args[0] = "/usr/local/bin/nbdkit";
    args.insert(args.end(), plugin.begin(), plugin.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::close_range(3, ~0U, 0);
      ::execve(argv[0], argv.data(), environ);
      ::_exit(127);
    }
    ::close(log_fd);
    for (int i = 0; i < 1000; ++i) {
      struct stat st;
      if (::stat(pid_file.c_str(), &st) == 0 && st.st_size > 0) return true;
      int ws;
      if (::waitpid(pid_, &ws, WNOHANG) == pid_) {
        pid_ = -1;
        *error = "nbdkit died: " + testing::ReadFileOrDie(log);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    *error = "nbdkit did not start";
    return false;
  }
  ~NbdkitServer() { Stop(); }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int ws;
    ::waitpid(pid_, &ws, 0);
    pid_ = -1;
  }
  std::string uri() const { return "nbd+unix:///?socket=" + socket_; }

 private:
  pid_t pid_ = -1;
  std::string socket_;
};

// ---- ProbePartitions (no root needed)
// ----------------------------------------

class ProbePartitionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {"mke2fs", "sfdisk", "mkswap"}) {
      if (!HaveProgram(p)) GTEST_SKIP() << p << " is not installed";
    }
    if (::geteuid() != 0) GTEST_SKIP() << "building the image needs root";
    std::string error;
    ASSERT_TRUE(BuildTestDisk(dir_.path(), &disk_, &error)) << error;
  }
  testing::ScratchDir dir_;
  TestDisk disk_;
};

TEST_F(ProbePartitionsTest, ListsPartitionsAndTheirFileSystems) {
  auto parts = ProbePartitions(disk_.path);
  ASSERT_TRUE(parts.ok()) << parts.status();
  std::vector<uint32_t> numbers;
  for (const auto& p : *parts) numbers.push_back(p.number);
  // The extended container (3) is left out; its logical partitions are in.
  EXPECT_EQ(numbers, (std::vector<uint32_t>{1, 2, 5, 6}));
  for (const auto& p : *parts) {
    SCOPED_TRACE(DescribePartition(p));
    EXPECT_EQ(p.offset, disk_.parts[p.number].first);
    EXPECT_EQ(p.size, disk_.parts[p.number].second);
    EXPECT_TRUE(p.probe_error.empty()) << p.probe_error;
  }
  const auto& p1 = (*parts)[0];
  EXPECT_EQ(p1.fs_type, "ext4");
  EXPECT_EQ(p1.label, "cairn-root");
  EXPECT_EQ(p1.uuid.size(), 36u);
  EXPECT_EQ(p1.part_type, "0x83");
  EXPECT_EQ(DescribePartition(p1), "partition 1 (ext4 at offset 1048576)");
  const auto& p2 = (*parts)[1];
  EXPECT_EQ(p2.part_type, "0x0c");
  if (disk_.has_vfat) {
    EXPECT_EQ(p2.fs_type, "vfat");
    EXPECT_EQ(p2.label, "CAIRNFAT");
  }
  const auto& p5 = (*parts)[2];
  EXPECT_EQ(p5.fs_type, "swap");
  EXPECT_EQ(p5.label, "cairn-swap");
  EXPECT_EQ(p5.part_type, "0x82");
  if (disk_.has_btrfs) {
    EXPECT_EQ((*parts)[3].fs_type, "btrfs");
    EXPECT_EQ((*parts)[3].label, "cairn-btrfs");
  }
}

TEST_F(ProbePartitionsTest, WholeDiskFileSystemAndEmptyDisk) {
  std::string whole = dir_.Sub("whole.img");
  std::string out;
  ASSERT_EQ(RunShell(StrCat("truncate -s 8M ", whole,
                            " && mke2fs -q -F -t "
                            "ext2 -L plain ",
                            whole),
                     &out),
            0)
      << out;
  auto parts = ProbePartitions(whole);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].number, 0u);
  EXPECT_EQ((*parts)[0].offset, 0u);
  EXPECT_EQ((*parts)[0].size, 8u << 20);
  EXPECT_EQ((*parts)[0].fs_type, "ext2");
  EXPECT_EQ((*parts)[0].label, "plain");
  EXPECT_EQ((*parts)[0].part_type, "");
  EXPECT_EQ(DescribePartition((*parts)[0]), "whole disk (ext2 at offset 0)");

  std::string empty = dir_.Sub("empty.img");
  ASSERT_EQ(RunShell(StrCat("truncate -s 4M ", empty), &out), 0);
  parts = ProbePartitions(empty);
  ASSERT_TRUE(parts.ok()) << parts.status();
  EXPECT_TRUE(parts->empty());

  EXPECT_EQ(ProbePartitions(dir_.Sub("absent")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ProbePartitionsTest, GptTypesAreGuids) {
  std::string gpt = dir_.Sub("gpt.img");
  std::string out;
  ASSERT_EQ(RunShell(StrCat("truncate -s 16M ", gpt,
                            " && printf 'label: gpt\\nsize=4MiB, "
                            "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n' | "
                            "sfdisk -q ",
                            gpt),
                     &out),
            0)
      << out;
  auto parts = ProbePartitions(gpt);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].number, 1u);
  EXPECT_EQ((*parts)[0].part_type, "0fc63daf-8483-4772-8e79-3d69d8477de4");
  EXPECT_EQ((*parts)[0].fs_type, "");
}

// ---- PseudoDisk
// ----------------------------------------------------------------

class PseudoDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = SkipReason();
    if (!why.empty()) GTEST_SKIP() << why;
    std::string error;
    ASSERT_TRUE(BuildTestDisk(dir_.path(), &disk_, &error)) << error;
    image_hash_ = HashFile(disk_.path);
    ASSERT_EQ(::mkdir(dir_.Sub("server").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir(dir_.Sub("run").c_str(), 0700), 0);
  }

  // A safety net for a test that failed half-way: what it left under the
  // run directory goes (the function under test, but proven by its own
  // tests).
  void TearDown() override {
    testing::WriteFileOrDie(dir_.Sub("release"), "");  // a hung nbdkit script
    server_.Stop();
    if (std::filesystem::exists(run_dir())) {
      CleanStalePseudoDisks(run_dir()).IgnoreError();
    }
  }

  void Serve(const std::string& image) {
    std::string error;
    ASSERT_TRUE(server_.Start(dir_.Sub("server"), {"file", image}, &error))
        << error;
  }

  std::string run_dir() const { return dir_.Sub("run"); }

  testing::ScratchDir dir_;
  TestDisk disk_;
  std::string image_hash_;
  NbdkitServer server_;
};

TEST_F(PseudoDiskTest, MountsEveryPartitionItCanReadOnly) {
  Serve(disk_.path);
  PseudoDiskOptions o;
  o.nbd_uri = server_.uri();
  o.dir = JoinPath(run_dir(), "disk");
  auto disk = PseudoDisk::Attach(o);
  ASSERT_TRUE(disk.ok()) << disk.status();
  const PseudoDisk& d = **disk;
  PrintFileSystems(d);
  EXPECT_TRUE(d.attached());
  EXPECT_EQ(d.size(), disk_.size);
  EXPECT_EQ(d.disk_path(), JoinPath(o.dir, "fuse/disk"));
  struct stat st;
  ASSERT_EQ(::stat(o.dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(d.filesystems().size(), 4u);

  // 1: ext4, mounted, contents and metadata as written, read-only.
  const MountedFileSystem* p1 = Find(d, 1);
  ASSERT_NE(p1, nullptr);
  ASSERT_TRUE(p1->status.ok()) << p1->status;
  EXPECT_EQ(p1->mount_path, JoinPath(o.dir, "p1"));
  EXPECT_EQ(p1->loop_device.rfind("/dev/loop", 0), 0u);
  ExpectExt4Contents(p1->mount_path, disk_);
  std::string mountinfo = testing::ReadFileOrDie("/proc/self/mountinfo");
  bool found = false;
  for (std::string_view line : SplitLines(mountinfo)) {
    if (line.find(StrCat(" ", p1->mount_path, " ")) == std::string::npos) {
      continue;
    }
    found = true;
    EXPECT_NE(line.find(" ro,nosuid,nodev,noexec,noatime"), std::string::npos)
        << line;
    EXPECT_NE(line.find("ext4"), std::string::npos) << line;
    EXPECT_NE(line.find("norecovery"), std::string::npos) << line;  // noload
  }
  EXPECT_TRUE(found);
  // The loop device is read-only and limited to the partition.
  std::string loop_name = p1->loop_device.substr(5);
  EXPECT_EQ(testing::ReadFileOrDie(StrCat("/sys/block/", loop_name, "/ro")),
            "1\n");
  EXPECT_EQ(
      testing::ReadFileOrDie(StrCat("/sys/block/", loop_name, "/loop/offset")),
      StrCat(disk_.parts[1].first, "\n"));
  EXPECT_EQ(testing::ReadFileOrDie(
                StrCat("/sys/block/", loop_name, "/loop/sizelimit")),
            StrCat(disk_.parts[1].second, "\n"));

  // 2: vfat, mounted if this host's kernel has vfat, else an error of its
  // own (this container cannot load modules).
  const MountedFileSystem* p2 = Find(d, 2);
  ASSERT_NE(p2, nullptr);
  if (disk_.has_vfat && !p2->status.ok()) {
    EXPECT_NE(p2->status.message().find(StrCat("partition 2 (vfat at offset ",
                                               disk_.parts[2].first, ")")),
              absl::string_view::npos)
        << p2->status;
    EXPECT_TRUE(p2->mount_path.empty());
    EXPECT_TRUE(p2->loop_device.empty());
  }

  // 5: swap, skipped.
  const MountedFileSystem* p5 = Find(d, 5);
  ASSERT_NE(p5, nullptr);
  EXPECT_EQ(p5->status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(p5->status.message().find("partition 5 (swap at offset"),
            absl::string_view::npos)
      << p5->status;
  EXPECT_NE(p5->status.message().find("skipped"), absl::string_view::npos);
  EXPECT_TRUE(p5->mount_path.empty());
  EXPECT_TRUE(p5->loop_device.empty());

  // 6: btrfs (rescue=nologreplay), mounted.
  if (disk_.has_btrfs) {
    const MountedFileSystem* p6 = Find(d, 6);
    ASSERT_NE(p6, nullptr);
    ASSERT_TRUE(p6->status.ok()) << p6->status;
    for (const auto& [rel, content] : disk_.btrfs_files) {
      EXPECT_TRUE(testing::ReadFileOrDie(JoinPath(p6->mount_path, rel)) ==
                  content)
          << rel;
    }
    errno = 0;
    EXPECT_LT(::open(JoinPath(p6->mount_path, "x").c_str(),
                     O_WRONLY | O_CREAT | O_CLOEXEC, 0644),
              0);
    EXPECT_EQ(errno, EROFS);
  }

  // The disk file itself is read-only and shows the image's bytes.
  EXPECT_LT(::open(d.disk_path().c_str(), O_WRONLY | O_CLOEXEC), 0);
  std::string head(1 << 20, '\0');
  {
    std::ifstream f(d.disk_path(), std::ios::binary);
    f.read(head.data(), static_cast<std::streamsize>(head.size()));
  }
  std::string image_head(1 << 20, '\0');
  {
    std::ifstream f(disk_.path, std::ios::binary);
    f.read(image_head.data(), static_cast<std::streamsize>(image_head.size()));
  }
  EXPECT_TRUE(head == image_head);

  // Detach leaves nothing behind and is idempotent.
  EXPECT_TRUE((*disk)->Detach().ok());
  EXPECT_FALSE(d.attached());
  EXPECT_TRUE((*disk)->Detach().ok());
  ExpectNothingLeftBelow(run_dir());
  EXPECT_FALSE(std::filesystem::exists(o.dir));
  EXPECT_EQ(HashFile(disk_.path), image_hash_);
}

TEST_F(PseudoDiskTest, AttachWithoutMountingOnlyProbes) {
  Serve(disk_.path);
  PseudoDiskOptions o;
  o.nbd_uri = server_.uri();
  o.dir = JoinPath(run_dir(), "probe");
  o.mount = false;
  auto disk = PseudoDisk::Attach(o);
  ASSERT_TRUE(disk.ok()) << disk.status();
  ASSERT_EQ((*disk)->filesystems().size(), 4u);
  for (const auto& fs : (*disk)->filesystems()) {
    EXPECT_TRUE(fs.status.ok());
    EXPECT_TRUE(fs.mount_path.empty());
    EXPECT_TRUE(fs.loop_device.empty());
  }
  EXPECT_EQ((*disk)->filesystems()[0].partition.fs_type, "ext4");
  EXPECT_EQ(MountsBelow(o.dir).size(), 1u);  // the FUSE mount only
  EXPECT_TRUE(LoopsBackedBelow(run_dir()).empty());
  disk->reset();  // the destructor detaches
  ExpectNothingLeftBelow(run_dir());
}

TEST_F(PseudoDiskTest, DamagedFileSystemIsAnErrorOfItsPartitionOnly) {
  // Keep the ext4 superblock (so blkid still says ext4) but overwrite the
  // group descriptors and what follows with random bytes.
  std::string damaged = dir_.Sub("damaged.img");
  std::filesystem::copy_file(disk_.path, damaged);
  {
    std::fstream f(damaged, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(disk_.parts[1].first + 2048));
    std::string junk = testing::PseudoRandomBytes(64 << 10, 99);
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    ASSERT_TRUE(f.good());
  }
  Serve(damaged);
  PseudoDiskOptions o;
  o.nbd_uri = server_.uri();
  o.dir = JoinPath(run_dir(), "damaged");
  o.timeout_ms = 20000;
  auto start = std::chrono::steady_clock::now();
  auto disk = PseudoDisk::Attach(o);
  ASSERT_TRUE(disk.ok()) << disk.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  PrintFileSystems(**disk);
  const MountedFileSystem* p1 = Find(**disk, 1);
  ASSERT_NE(p1, nullptr);
  EXPECT_EQ(p1->partition.fs_type, "ext4");
  EXPECT_FALSE(p1->status.ok());
  EXPECT_NE(
      p1->status.message().find(StrCat("partition 1 (ext4 at offset ",
                                       disk_.parts[1].first, "): mount(2)")),
      absl::string_view::npos)
      << p1->status;
  EXPECT_TRUE(p1->mount_path.empty());
  EXPECT_TRUE(p1->loop_device.empty());
  EXPECT_TRUE(MountsBelow(JoinPath(o.dir, "p1")).empty());
  if (disk_.has_btrfs) {
    const MountedFileSystem* p6 = Find(**disk, 6);
    ASSERT_NE(p6, nullptr);
    EXPECT_TRUE(p6->status.ok()) << p6->status;
  }
  EXPECT_TRUE((*disk)->Detach().ok());
  ExpectNothingLeftBelow(run_dir());
}

// A mount(2) that never returns (the export stops answering in the middle
// of it) is reported as DeadlineExceeded for its partition; the other
// partitions are mounted, and Detach() still removes everything.
TEST_F(PseudoDiskTest, HangingMountTimesOutAndDetachCleansUp) {
  if (!HaveProgram("debugfs")) GTEST_SKIP() << "debugfs is not installed";
  // Where the root inode of the ext4 partition lives: ext4's mount reads it,
  // libblkid's probe does not.
  std::string out;
  ASSERT_EQ(RunShell(StrCat("debugfs -R 'imap <2>' '", disk_.path,
                            "?offset=", disk_.parts[1].first, "'"),
                     &out),
            0)
      << out;
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(out, m, std::regex(R"(located at block (\d+))")))
      << out;
  uint64_t block = std::stoull(m[1]);
  ASSERT_EQ(RunShell(StrCat("dumpe2fs -h '", disk_.path,
                            "?offset=", disk_.parts[1].first, "' 2>/dev/null"),
                     &out),
            0);
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(Block size:\s+(\d+))")))
      << out;
  uint64_t hang_start =
      (disk_.parts[1].first + block * std::stoull(m[1])) & ~uint64_t{4095};
  uint64_t hang_end = hang_start + 4096;
  // An NBD server (nbdkit's sh plugin) that sleeps on reads of that page.
  // It answers once `release` exists (at the end of the test).
  std::string script = dir_.Sub("slow.sh");
  std::string release = dir_.Sub("release");
  testing::WriteFileOrDie(
      script,
      StrCat("#!/bin/sh\ncase \"$1\" in\n"
             "  get_size) echo ",
             disk_.size,
             " ;;\n"
             "  thread_model) echo parallel ;;\n"
             "  pread)\n"
             "    if [ \"$4\" -lt ",
             hang_end, " ] && [ $(($4 + $3)) -gt ", hang_start,
             " ]; then\n"
             "      while [ ! -e ",
             release,
             " ]; do sleep 0.1; done\n"
             "    fi\n"
             "    exec dd if=",
             disk_.path,
             " iflag=skip_bytes,count_bytes skip=$4 count=$3 status=none ;;\n"
             "  *) exit 2 ;;\nesac\n"));
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  std::string error;
  ASSERT_TRUE(server_.Start(dir_.Sub("server"), {"sh", script}, &error))
      << error;

  PseudoDiskOptions o;
  o.nbd_uri = server_.uri();
  o.dir = JoinPath(run_dir(), "hung");
  o.timeout_ms = 1500;
  auto start = std::chrono::steady_clock::now();
  auto disk = PseudoDisk::Attach(o);
  ASSERT_TRUE(disk.ok()) << disk.status();
  PrintFileSystems(**disk);
  // Bounded: the probe plus at most one timeout per mountable partition.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  const MountedFileSystem* p1 = Find(**disk, 1);
  ASSERT_NE(p1, nullptr);
  EXPECT_EQ(p1->status.code(), absl::StatusCode::kDeadlineExceeded)
      << p1->status;
  EXPECT_NE(p1->status.message().find(
                StrCat("partition 1 (ext4 at offset ", disk_.parts[1].first,
                       "): mount(2) as ext4 did not return within 1500 ms")),
            absl::string_view::npos)
      << p1->status;
  EXPECT_TRUE(p1->mount_path.empty());
  // Requests queue behind the stuck one in nbdfuse, so the other mounts
  // may time out too - each as an error of its own partition.
  for (const MountedFileSystem& fs : (*disk)->filesystems()) {
    if (fs.status.ok()) continue;
    EXPECT_NE(fs.status.message().find(DescribePartition(fs.partition)),
              absl::string_view::npos)
        << fs.status;
  }

  start = std::chrono::steady_clock::now();
  Status detached = (*disk)->Detach();
  std::cout << "  Detach: " << detached << "\n";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  // The forced steps are reported.
  EXPECT_EQ(detached.code(), absl::StatusCode::kUnavailable) << detached;
  for (int i = 0; i < 100 && !(MountsBelow(run_dir()).empty() &&
                               LoopsBackedBelow(run_dir()).empty());
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ExpectNothingLeftBelow(run_dir());
  EXPECT_FALSE(std::filesystem::exists(o.dir));
  testing::WriteFileOrDie(release, "");  // let nbdkit's script finish
}

TEST_F(PseudoDiskTest, RefusesBadOptionsAndUnreachableExports) {
  PseudoDiskOptions o;
  EXPECT_EQ(PseudoDisk::Attach(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.nbd_uri = "nbd+unix:///?socket=" + dir_.Sub("nobody-listens.sock");
  EXPECT_EQ(PseudoDisk::Attach(o).status().code(),
            absl::StatusCode::kInvalidArgument);  // no dir
  o.dir = dir_.Sub("not-empty");
  ASSERT_EQ(::mkdir(o.dir.c_str(), 0700), 0);
  testing::WriteFileOrDie(JoinPath(o.dir, "f"), "x");
  EXPECT_EQ(PseudoDisk::Attach(o).status().code(),
            absl::StatusCode::kFailedPrecondition);
  o.dir = JoinPath(run_dir(), "unreachable");
  o.timeout_ms = 10000;
  Status s = PseudoDisk::Attach(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("nbdfuse"), absl::string_view::npos) << s;
  EXPECT_FALSE(std::filesystem::exists(o.dir));
  o.nbdfuse_path = "/nonexistent/nbdfuse";
  EXPECT_EQ(PseudoDisk::Attach(o).status().code(), absl::StatusCode::kNotFound);
  ExpectNothingLeftBelow(run_dir());
}

// A crash: the process that attached is SIGKILLed. nbdfuse follows it
// (PR_SET_PDEATHSIG), the FUSE mount is left dead and the ext4 mount on its
// loop device stays. CleanStalePseudoDisks removes all of it.
TEST_F(PseudoDiskTest, CleanStaleRemovesWhatAKilledProcessLeft) {
  Serve(disk_.path);
  std::string session = JoinPath(run_dir(), "s-crashed");
  ASSERT_EQ(::mkdir(session.c_str(), 0700), 0);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    PseudoDiskOptions o;
    o.nbd_uri = server_.uri();
    o.dir = JoinPath(session, "disk");
    auto disk = PseudoDisk::Attach(o);
    char c =
        disk.ok() && Find(**disk, 1) != nullptr && Find(**disk, 1)->status.ok()
            ? 'y'
            : 'n';
    ssize_t ignored = ::write(ready[1], &c, 1);
    (void)ignored;
    while (true) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  std::vector<std::string> loops = LoopsBackedBelow(session);
  ::kill(child, SIGKILL);
  int ws;
  ::waitpid(child, &ws, 0);
  ASSERT_EQ(c, 'y');
  EXPECT_FALSE(loops.empty());
  EXPECT_FALSE(MountsBelow(session).empty());

  auto cleaned = CleanStalePseudoDisks(run_dir());
  ASSERT_TRUE(cleaned.ok()) << cleaned.status();
  EXPECT_EQ(*cleaned, 1);
  ExpectNothingLeftBelow(run_dir());
  EXPECT_FALSE(std::filesystem::exists(session));
  EXPECT_TRUE(std::filesystem::exists(run_dir()));
  // Its loop devices went with their (lazily unmounted) file systems. Once
  // nbdfuse died their backing file shows as "/disk" (its mount is gone), so
  // they are checked by name.
  for (const std::string& loop : loops) {
    std::string backing = "?";
    for (int i = 0; i < 100; ++i) {
      if (!ReadProcFile(StrCat("/sys/block/", loop, "/loop/backing_file"),
                        &backing) ||
          backing != "/disk\n") {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_NE(backing, "/disk\n") << loop << " is still bound";
  }
  // Nothing left: a second run cleans nothing.
  cleaned = CleanStalePseudoDisks(run_dir());
  ASSERT_TRUE(cleaned.ok()) << cleaned.status();
  EXPECT_EQ(*cleaned, 0);
  EXPECT_EQ(HashFile(disk_.path), image_hash_);
}

// The same layout made by hand, with the pieces a crash of the whole media
// agent leaves: an nbdkit without --exit-with-parent, a live nbdfuse, a loop
// device without AUTOCLEAR (losetup) and its mount.
TEST_F(PseudoDiskTest, CleanStaleEndsProcessesOfItsPidFilesOnly) {
  std::string session = JoinPath(run_dir(), "s-manual");
  std::string nbd_dir = JoinPath(session, "cairn-nbd-abcdef");
  std::string disk_dir = JoinPath(session, "disk");
  std::string out;
  ASSERT_EQ(RunShell(StrCat("mkdir -p ", nbd_dir, " ", disk_dir, "/fuse ",
                            disk_dir, "/p1 && chmod -R 700 ", session),
                     &out),
            0)
      << out;
  std::string sock = JoinPath(nbd_dir, "nbd.sock");
  ASSERT_EQ(RunShell(StrCat("nbdkit --readonly -U ", sock, " -P ", nbd_dir,
                            "/nbdkit.pid file ", disk_.path),
                     &out),
            0)
      << out;
  ASSERT_EQ(RunShell(StrCat("nbdfuse --readonly -P ", disk_dir, "/nbdfuse.pid ",
                            disk_dir, "/fuse/disk nbd+unix:///?socket=", sock,
                            " </dev/null >/dev/null 2>&1 & for i in $(seq "
                            "500); do [ -s ",
                            disk_dir,
                            "/nbdfuse.pid ] && break; sleep 0.01; "
                            "done; [ -s ",
                            disk_dir, "/nbdfuse.pid ]"),
                     &out),
            0)
      << out;
  ASSERT_EQ(
      RunShell(StrCat("L=$(losetup -f --show -r -o ", disk_.parts[1].first,
                      " --sizelimit ", disk_.parts[1].second, " ", disk_dir,
                      "/fuse/disk) && mount -o ro,noload $L ", disk_dir, "/p1"),
               &out),
      0)
      << out;
  EXPECT_EQ(MountsBelow(session).size(), 2u);
  EXPECT_EQ(LoopsBackedBelow(session).size(), 1u);
  EXPECT_EQ(ProcessesMentioning(session).size(), 2u)
      << ::testing::PrintToString(ProcessesMentioning(session));
  // A decoy: a live process whose pid is in an nbdkit.pid file but which is
  // not nbdkit must survive.
  std::string decoy_dir = JoinPath(run_dir(), "s-decoy");
  ASSERT_EQ(::mkdir(decoy_dir.c_str(), 0700), 0);
  pid_t decoy = ::fork();
  if (decoy == 0) {
    ::close_range(0, ~0U, 0);
    while (true) ::pause();
  }
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      int ws;
      ::waitpid(pid, &ws, 0);
    }
  } reap_decoy{decoy};
  testing::WriteFileOrDie(JoinPath(decoy_dir, "nbdkit.pid"),
                          StrCat(decoy, "\n"));
  testing::WriteFileOrDie(JoinPath(run_dir(), "lock"), "");

  auto cleaned = CleanStalePseudoDisks(run_dir());
  ASSERT_TRUE(cleaned.ok()) << cleaned.status();
  EXPECT_EQ(*cleaned, 2);
  // The lazily detached loop goes once its mount is released; give it time.
  for (int i = 0; i < 100 && !LoopsBackedBelow(run_dir()).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ExpectNothingLeftBelow(run_dir());
  EXPECT_TRUE(std::filesystem::exists(JoinPath(run_dir(), "lock")));
  EXPECT_EQ(::kill(decoy, 0), 0) << "the decoy was killed";
}

TEST_F(PseudoDiskTest, CleanStaleRefusesASharedDirectory) {
  EXPECT_EQ(CleanStalePseudoDisks("/tmp").status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto none = CleanStalePseudoDisks(dir_.Sub("absent"));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
}

}  // namespace
}  // namespace cairn
