// Tests of MountSessionManager on real components: the test disk image
// (pseudo_disk_test.cc) is backed up into a repository (plain and encrypted),
// exported by nbdkit with Cairn's plugin and attached as a PseudoDisk. They
// need root, /dev/fuse, /dev/loop-control, nbdkit, nbdfuse and the plugin
// (built next to this binary, or $CAIRN_NBD_PLUGIN), and skip without.
#include "media_agent/mount_sessions.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "common/data_key.h"
#include "common/strings.h"
#include "media_agent/nbd_export.h"
#include "tests/testing/test_util.h"
#include "tests/unit/repo_fixture.h"

namespace cairn::pdtest {
// Defined in pseudo_disk_test.cc (same test binary).
struct TestDisk {
  std::string path;
  uint64_t size = 0;
  std::map<uint32_t, std::pair<uint64_t, uint64_t>> parts;
  bool has_vfat = false;
  bool has_btrfs = false;
  std::map<std::string, std::string> ext4_files;
  std::map<std::string, std::string> btrfs_files;
};
std::string SkipReason();
bool BuildTestDisk(const std::string& work, TestDisk* disk, std::string* error);
std::map<std::string, std::string> HashTree(const std::string& dir);
std::vector<std::string> MountsBelow(const std::string& dir);
std::vector<std::string> LoopsBackedBelow(const std::string& dir);
std::vector<std::string> ProcessesMentioning(const std::string& text);
void ExpectExt4Contents(const std::string& mount, const TestDisk& disk);
void ExpectNothingLeftBelow(const std::string& dir);
const MountedFileSystem* Find(const PseudoDisk& d, uint32_t number);
}  // namespace cairn::pdtest

namespace cairn {
namespace {

using namespace pdtest;  // NOLINT: test helpers
using std::chrono::hours;
using std::chrono::steady_clock;

std::string TestSecret(char seed) {
  std::string s(DataKey::kSize, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(seed + 5 * i);
  return s;
}

class MountSessionTest : public RepoFixture {
 protected:
  void SetUp() override {
    std::string why = SkipReason();
    if (!why.empty()) GTEST_SKIP() << why;
    auto plugin = FindNbdPlugin();
    if (!plugin.ok()) GTEST_SKIP() << plugin.status().message();
    RepoFixture::SetUp();
    std::string error;
    ASSERT_TRUE(BuildTestDisk(dir_.path(), &disk_, &error)) << error;
    std::string image = testing::ReadFileOrDie(disk_.path);
    BackupData("plain", image);
    secret_ = TestSecret(3);
    auto key = DataKey::FromSecret(secret_);
    ASSERT_TRUE(key.ok());
    BackupData("sealed", image, "", &*key);
    chunks_before_ = HashTree(JoinPath(dir_.Sub("repo"), "chunks"));
    ASSERT_FALSE(chunks_before_.empty());
    runtime_ = dir_.Sub("run");
  }

  // A safety net for a test that failed half-way (its manager is gone by
  // now): what it left in the runtime directory goes.
  void TearDown() override {
    if (!runtime_.empty() && std::filesystem::exists(runtime_)) {
      CleanStalePseudoDisks(runtime_).IgnoreError();
    }
  }

  std::unique_ptr<MountSessionManager> NewManager() {
    MountSessionOptions o;
    o.repo_root = dir_.Sub("repo");
    o.runtime_dir = runtime_;
    o.idle_timeout = std::chrono::seconds(60);
    auto m = MountSessionManager::Create(o);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *std::move(m) : nullptr;
  }

  void ExpectChunksUnchanged() {
    EXPECT_TRUE(HashTree(JoinPath(dir_.Sub("repo"), "chunks")) ==
                chunks_before_)
        << "the repository's chunk files changed";
  }

  TestDisk disk_;
  std::string secret_;
  std::string runtime_;
  std::map<std::string, std::string> chunks_before_;
};

TEST_F(MountSessionTest, AcquireMountsTheBackupAndSharesOneSession) {
  auto manager = NewManager();
  ASSERT_NE(manager, nullptr);
  auto first = manager->Acquire("plain", "");
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = manager->Acquire("plain", "");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->get(), second->get());  // one session
  EXPECT_EQ(manager->active_sessions(), 1u);
  const MountSession& s = **first;
  EXPECT_EQ(s.backup_id(), "plain");
  EXPECT_EQ(s.disk().size(), disk_.size);
  const MountedFileSystem* p1 = Find(s.disk(), 1);
  ASSERT_NE(p1, nullptr);
  ASSERT_TRUE(p1->status.ok()) << p1->status;
  ExpectExt4Contents(p1->mount_path, disk_);
  const MountedFileSystem* p5 = Find(s.disk(), 5);
  ASSERT_NE(p5, nullptr);
  EXPECT_EQ(p5->status.code(), absl::StatusCode::kFailedPrecondition);
  // One nbdkit (Cairn's plugin, lock=none) serves it.
  auto procs = ProcessesMentioning(s.dir());
  EXPECT_EQ(procs.size(), 2u) << ::testing::PrintToString(procs);  // + nbdfuse

  // Idle reaping: nothing happens while a handle is held.
  first->reset();
  manager->ReapIdleForTest(steady_clock::now() + hours(1));
  EXPECT_EQ(manager->active_sessions(), 1u);
  EXPECT_TRUE((*second)->disk().attached());
  ExpectExt4Contents(Find((*second)->disk(), 1)->mount_path, disk_);
  // Dropped, but not yet idle for idle_timeout: still there.
  second->reset();
  manager->ReapIdleForTest(steady_clock::now());
  EXPECT_EQ(manager->active_sessions(), 1u);
  // A third Acquire reuses the idle session.
  auto third = manager->Acquire("plain", "");
  ASSERT_TRUE(third.ok()) << third.status();
  std::string session_dir = (*third)->dir();
  third->reset();
  manager->ReapIdleForTest(steady_clock::now() + hours(1));
  EXPECT_EQ(manager->active_sessions(), 0u);
  ExpectNothingLeftBelow(runtime_);
  EXPECT_FALSE(std::filesystem::exists(session_dir));
  ExpectChunksUnchanged();
}

TEST_F(MountSessionTest,
       EncryptedBackupNeedsItsKeyAndALiveSessionRefusesOthers) {
  auto manager = NewManager();
  ASSERT_NE(manager, nullptr);
  // Not started without the key, nor with another one (nbdkit refuses).
  Status no_key = manager->Acquire("sealed", "").status();
  EXPECT_EQ(no_key.code(), absl::StatusCode::kFailedPrecondition) << no_key;
  Status wrong = manager->Acquire("sealed", TestSecret(9)).status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kFailedPrecondition) << wrong;
  EXPECT_EQ(manager->active_sessions(), 0u);

  auto handle = manager->Acquire("sealed", secret_);
  ASSERT_TRUE(handle.ok()) << handle.status();
  const MountedFileSystem* p1 = Find((*handle)->disk(), 1);
  ASSERT_NE(p1, nullptr);
  ASSERT_TRUE(p1->status.ok()) << p1->status;
  ExpectExt4Contents(p1->mount_path, disk_);
  // The live session is not handed to a caller with another key, or none.
  Status other = manager->Acquire("sealed", TestSecret(9)).status();
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied) << other;
  EXPECT_EQ(manager->Acquire("sealed", "").status().code(),
            absl::StatusCode::kPermissionDenied);
  auto again = manager->Acquire("sealed", secret_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), handle->get());
  // The key never appears on a command line.
  for (const std::string& p : ProcessesMentioning((*handle)->dir())) {
    EXPECT_EQ(p.find("key="), std::string::npos) << p;
  }
  handle->reset();
  again->reset();
  manager->Shutdown();
  ExpectNothingLeftBelow(runtime_);
  ExpectChunksUnchanged();
}

TEST_F(MountSessionTest, ConcurrentAcquiresStartTheSessionOnce) {
  auto manager = NewManager();
  ASSERT_NE(manager, nullptr);
  constexpr int kThreads = 4;
  std::vector<std::shared_ptr<const MountSession>> got(kThreads);
  std::vector<Status> statuses(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto h = manager->Acquire("plain", "");
      statuses[i] = h.status();
      if (h.ok()) got[i] = *std::move(h);
    });
  }
  // These threads end before the session does: the session's processes must
  // not die with them.
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i];
    EXPECT_EQ(got[i].get(), got[0].get());
  }
  EXPECT_EQ(manager->active_sessions(), 1u);
  size_t sessions = 0;
  for (const auto& e : std::filesystem::directory_iterator(runtime_)) {
    if (e.is_directory()) ++sessions;
  }
  EXPECT_EQ(sessions, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(got[0]->disk().attached());
  ExpectExt4Contents(Find(got[0]->disk(), 1)->mount_path, disk_);
  got.clear();
  manager->ReapIdleForTest(steady_clock::now() + hours(1));
  EXPECT_EQ(manager->active_sessions(), 0u);
  ExpectNothingLeftBelow(runtime_);
}

TEST_F(MountSessionTest, ShutdownStopsSessionsStillInUse) {
  auto manager = NewManager();
  ASSERT_NE(manager, nullptr);
  auto handle = manager->Acquire("plain", "");
  ASSERT_TRUE(handle.ok()) << handle.status();
  std::string mount = Find((*handle)->disk(), 1)->mount_path;
  EXPECT_FALSE(MountsBelow(mount).empty());
  manager->Shutdown();
  EXPECT_EQ(manager->active_sessions(), 0u);
  // The handle is still a valid object, but its mounts are gone.
  EXPECT_EQ((*handle)->backup_id(), "plain");
  EXPECT_FALSE((*handle)->disk().attached());
  EXPECT_TRUE(MountsBelow(mount).empty());
  ExpectNothingLeftBelow(runtime_);
  EXPECT_EQ(manager->Acquire("plain", "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  manager.reset();  // the handle outlives the manager
  EXPECT_EQ((*handle)->backup_id(), "plain");
  handle->reset();
}

TEST_F(MountSessionTest, RefusesUnknownBackupsAndASecondManager) {
  auto manager = NewManager();
  ASSERT_NE(manager, nullptr);
  EXPECT_EQ(manager->Acquire("nope", "").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager->Acquire("../etc", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager->Acquire("plain", "short").status().code(),
            absl::StatusCode::kInvalidArgument);
  MountSessionOptions o;
  o.repo_root = dir_.Sub("repo");
  o.runtime_dir = runtime_;
  EXPECT_EQ(MountSessionManager::Create(o).status().code(),
            absl::StatusCode::kFailedPrecondition);  // RUNTIME/lock is held
  EXPECT_EQ(manager->active_sessions(), 0u);
  ExpectNothingLeftBelow(runtime_);
}

// A media agent killed with sessions mounted: the next manager on the same
// runtime directory cleans up what it left.
TEST_F(MountSessionTest, CreateCleansSessionsOfAKilledProcess) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    auto manager = NewManager();
    char c = 'n';
    if (manager != nullptr) {
      auto handle = manager->Acquire("plain", "");
      if (handle.ok() && Find((*handle)->disk(), 1)->status.ok()) c = 'y';
      ssize_t ignored = ::write(ready[1], &c, 1);
      (void)ignored;
      while (true) ::pause();
    }
    ssize_t ignored = ::write(ready[1], &c, 1);
    (void)ignored;
    ::_exit(1);
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::kill(child, SIGKILL);
  int ws;
  ::waitpid(child, &ws, 0);
  ASSERT_EQ(c, 'y');
  EXPECT_FALSE(MountsBelow(runtime_).empty());

  auto manager = NewManager();  // cleans
  ASSERT_NE(manager, nullptr);
  // nbdkit (--exit-with-parent) and nbdfuse (PR_SET_PDEATHSIG) died with the
  // killed process; the mounts and directories were left and are gone now.
  for (int i = 0; i < 100 && !ProcessesMentioning(runtime_).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ExpectNothingLeftBelow(runtime_);
  size_t sessions = 0;
  for (const auto& e : std::filesystem::directory_iterator(runtime_)) {
    if (e.is_directory()) ++sessions;
  }
  EXPECT_EQ(sessions, 0u);
  // And it works on the cleaned directory.
  auto handle = manager->Acquire("plain", "");
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_TRUE(Find((*handle)->disk(), 1)->status.ok());
  handle->reset();
  manager->Shutdown();
  ExpectNothingLeftBelow(runtime_);
  ExpectChunksUnchanged();
}

}  // namespace
}  // namespace cairn
