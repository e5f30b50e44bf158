// FileRestorer (agent/file_restore.h) against an in-memory BackupFileSource:
// a tree restores byte-exact with mode (setuid included), owner (as root)
// and nanosecond times, through openat2 and through the O_NOFOLLOW walk;
// symlinks are written as stored and never followed, also when one sits at
// the destination; hostile names from the source are refused before
// anything is written; a failure or a cancel mid-way leaves no temporary
// file; a destination whose parent is a symlink is refused. And a
// file-restore job through ExecuteJob: progress, and errors that stay valid
// UTF-8 when a name is not.
#include "agent/file_restore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "agent/control_client.h"
#include "agent/job_execution.h"
#include "common/strings.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using Type = BackupFileEntry::Type;

constexpr int64_t kSecond = 1'000'000'000;

// A backup's file system in memory. Every entry's parent must be added
// first. `Inject` adds raw (possibly hostile) entries to a listing.
class FakeSource final : public BackupFileSource {
 public:
  FakeSource() { AddDir("/", 0755, 0, 0, 1'500'000'000 * kSecond + 1); }

  void AddDir(const std::string& path, uint32_t mode, uint32_t uid,
              uint32_t gid, int64_t mtime_ns) {
    Add(path, Type::kDirectory, mode, uid, gid, mtime_ns, "", "");
  }
  void AddFile(const std::string& path, std::string content, uint32_t mode,
               uint32_t uid, uint32_t gid, int64_t mtime_ns) {
    Add(path, Type::kRegular, mode, uid, gid, mtime_ns, std::move(content), "");
  }
  void AddSymlink(const std::string& path, const std::string& target,
                  int64_t mtime_ns) {
    Add(path, Type::kSymlink, 0777, 0, 0, mtime_ns, "", target);
  }
  void AddOther(const std::string& path) {
    Add(path, Type::kOther, 0644, 0, 0, kSecond, "", "");
  }
  // Lists `entry` in `dir` as well (a hostile media agent's listing).
  void Inject(const std::string& dir, BackupFileEntry entry) {
    injected_[dir].push_back(std::move(entry));
  }
  // Reads of `path` fail with `status` after `bytes` bytes.
  void FailReadAfter(const std::string& path, uint64_t bytes, Status status) {
    fail_[path] = {bytes, std::move(status)};
  }
  // Reads of `path` report `size` in their entry instead of the listed one.
  void LieAboutSize(const std::string& path, uint64_t size) {
    lie_size_[path] = size;
  }
  // Called after each piece a read delivers.
  std::function<void(uint64_t delivered)> after_piece;

  StatusOr<BackupDirectoryListing> List(const std::string& path) override {
    ++lists_;
    auto it = nodes_.find(path);
    if (it == nodes_.end()) {
      return absl::NotFoundError(StrCat(path, " not found"));
    }
    if (it->second.entry.type != Type::kDirectory) {
      return absl::FailedPreconditionError(StrCat(path, " is not a directory"));
    }
    BackupDirectoryListing out;
    out.directory = it->second.entry;
    for (const auto& [p, node] : nodes_) {
      if (p != "/" && Parent(p) == path) out.entries.push_back(node.entry);
    }
    for (const BackupFileEntry& e : injected_[path]) out.entries.push_back(e);
    return out;
  }

  Status Read(const std::string& path,
              const std::function<Status(const BackupFileEntry&)>& on_entry,
              const std::function<Status(std::string_view)>& on_data) override {
    ++reads_;
    auto it = nodes_.find(path);
    if (it == nodes_.end()) return absl::NotFoundError(path);
    if (it->second.entry.type != Type::kRegular) {
      return absl::FailedPreconditionError(StrCat(path, " is not a file"));
    }
    BackupFileEntry entry = it->second.entry;
    if (lie_size_.count(path)) entry.size = lie_size_[path];
    CAIRN_RETURN_IF_ERROR(on_entry(entry));
    const std::string& data = it->second.content;
    constexpr size_t kPiece = 64 << 10;
    auto fail = fail_.find(path);
    for (size_t off = 0; off < data.size(); off += kPiece) {
      if (fail != fail_.end() && off >= fail->second.first) {
        return fail->second.second;
      }
      CAIRN_RETURN_IF_ERROR(
          on_data(std::string_view(data).substr(off, kPiece)));
      if (after_piece) after_piece(std::min(data.size(), off + kPiece));
    }
    return Status();
  }

  int lists() const { return lists_; }
  int reads() const { return reads_; }

 private:
  struct Node {
    BackupFileEntry entry;
    std::string content;
  };
  static std::string Parent(const std::string& p) {
    size_t slash = p.rfind('/');
    return slash == 0 ? "/" : p.substr(0, slash);
  }
  void Add(const std::string& path, Type type, uint32_t mode, uint32_t uid,
           uint32_t gid, int64_t mtime_ns, std::string content,
           const std::string& target) {
    if (path != "/") {
      auto parent = nodes_.find(Parent(path));
      ASSERT_TRUE(parent != nodes_.end() &&
                  parent->second.entry.type == Type::kDirectory)
          << path;
    }
    Node n;
    n.entry.path = path;
    n.entry.type = type;
    n.entry.size = content.size();
    n.entry.mode = mode;
    n.entry.uid = uid;
    n.entry.gid = gid;
    n.entry.mtime_ns = mtime_ns;
    n.entry.atime_ns = mtime_ns - 7 * kSecond + 3;
    n.entry.symlink_target = target;
    n.content = std::move(content);
    nodes_[path] = std::move(n);
  }

  std::map<std::string, Node> nodes_;
  std::map<std::string, std::vector<BackupFileEntry>> injected_;
  std::map<std::string, std::pair<uint64_t, Status>> fail_;
  std::map<std::string, uint64_t> lie_size_;
  int lists_ = 0;
  int reads_ = 0;
};

const bool kRoot = ::geteuid() == 0;

int64_t Ns(const struct timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * kSecond + t.tv_nsec;
}

struct FileInfo {
  bool exists = false;
  mode_t type = 0;
  uint32_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
};
FileInfo LStat(const std::string& path) {
  struct stat st;
  FileInfo out;
  if (::lstat(path.c_str(), &st) != 0) return out;
  out.exists = true;
  out.type = st.st_mode & S_IFMT;
  out.mode = st.st_mode & 07777;
  out.uid = st.st_uid;
  out.gid = st.st_gid;
  out.atime_ns = Ns(st.st_atim);
  out.mtime_ns = Ns(st.st_mtim);
  return out;
}

// Every temporary file FileRestorer may have left under `dir`.
std::vector<std::string> Temporaries(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename().string().rfind(".cairn-restore-", 0) == 0) {
      found.push_back(it->path().string());
    }
  }
  return found;
}

// Every name under `dir`, relative, sorted.
std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    names.insert(fs::relative(it->path(), dir).string());
  }
  return names;
}

// The tree most tests restore, under /srv.
struct Tree {
  std::string big = testing::PseudoRandomBytes((1 << 20) + 12345, 7);
  std::string tool = testing::PseudoRandomBytes(4096 + 1, 8);
  std::string leaf = "leaf\n";
  std::string ro = "read-only dir content\n";

  void AddTo(FakeSource* s) const {
    s->AddDir("/srv", 0751, 0, 0, 1'600'000'000 * kSecond + 111'222'333);
    s->AddDir("/srv/data", 02775, 1001, 1002,
              1'600'000'100 * kSecond + 999'999'999);
    s->AddFile("/srv/data/big.bin", big, 0640, 1001, 1002,
               1'600'000'200 * kSecond + 123'456'789);
    s->AddFile("/srv/data/empty", "", 0600, 1001, 1002,
               1'600'000'201 * kSecond + 1);
    s->AddDir("/srv/bin", 0755, 0, 0, 1'600'000'300 * kSecond + 42);
    s->AddFile("/srv/bin/tool", tool, 04755, 1234, 5678,
               1'600'000'301 * kSecond + 500'000'001);
    s->AddSymlink("/srv/evil", "../../etc/passwd",
                  1'600'000'400 * kSecond + 77);
    s->AddDir("/srv/nested", 0700, 0, 0, 1'600'000'500 * kSecond + 5);
    s->AddDir("/srv/nested/a", 0710, 0, 0, 1'600'000'501 * kSecond + 6);
    s->AddDir("/srv/nested/a/b", 0750, 0, 0, 1'600'000'502 * kSecond + 7);
    s->AddFile("/srv/nested/a/b/leaf.txt", leaf, 0444, 0, 0,
               1'600'000'503 * kSecond + 8);
    s->AddDir("/srv/ro", 0555, 0, 0, 1'600'000'600 * kSecond + 9);
    s->AddFile("/srv/ro/f", ro, 0644, 0, 0, 1'600'000'601 * kSecond + 10);
    s->AddOther("/srv/fifo");
  }
};

struct Expect {
  std::string rel;
  mode_t type;
  uint32_t mode;
  uint32_t uid, gid;
  int64_t mtime_ns;
};

class FileRestoreTest : public ::testing::TestWithParam<bool> {
 protected:
  FileRestoreOptions Options() {
    FileRestoreOptions o;
    o.force_component_walk = GetParam();
    o.cancel = &cancel_;
    o.on_started = [this](std::shared_ptr<const ProgressCounter> c) {
      counter_ = std::move(c);
    };
    return o;
  }

  testing::ScratchDir scratch_;
  CancellationFlag cancel_;
  std::shared_ptr<const ProgressCounter> counter_;
};

TEST_P(FileRestoreTest, RestoresATreeByteExactWithMetadata) {
  FakeSource source;
  Tree tree;
  tree.AddTo(&source);
  const std::string out = scratch_.Sub("out");
  FileRestorer restorer(&source, Options());
  auto stats = restorer.Restore("/srv", out);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 5u);
  EXPECT_EQ(stats->directories, 7u);
  EXPECT_EQ(stats->symlinks, 1u);
  EXPECT_EQ(stats->skipped, 1u);
  const uint64_t total =
      tree.big.size() + tree.tool.size() + tree.leaf.size() + tree.ro.size();
  EXPECT_EQ(stats->bytes, total);
  ASSERT_NE(counter_, nullptr);
  EXPECT_EQ(counter_->Snapshot().total_bytes, total);
  EXPECT_EQ(counter_->Snapshot().done_bytes, total);

  // Metadata first: reading contents could move access times.
  const std::vector<Expect> expected = {
      {"", S_IFDIR, 0751, 0, 0, 1'600'000'000 * kSecond + 111'222'333},
      {"data", S_IFDIR, 02775, 1001, 1002,
       1'600'000'100 * kSecond + 999'999'999},
      {"data/big.bin", S_IFREG, 0640, 1001, 1002,
       1'600'000'200 * kSecond + 123'456'789},
      {"data/empty", S_IFREG, 0600, 1001, 1002, 1'600'000'201 * kSecond + 1},
      {"bin", S_IFDIR, 0755, 0, 0, 1'600'000'300 * kSecond + 42},
      {"bin/tool", S_IFREG, 04755, 1234, 5678,
       1'600'000'301 * kSecond + 500'000'001},
      {"evil", S_IFLNK, 0, 0, 0, 1'600'000'400 * kSecond + 77},
      {"nested", S_IFDIR, 0700, 0, 0, 1'600'000'500 * kSecond + 5},
      {"nested/a", S_IFDIR, 0710, 0, 0, 1'600'000'501 * kSecond + 6},
      {"nested/a/b", S_IFDIR, 0750, 0, 0, 1'600'000'502 * kSecond + 7},
      {"nested/a/b/leaf.txt", S_IFREG, 0444, 0, 0, 1'600'000'503 * kSecond + 8},
      {"ro", S_IFDIR, 0555, 0, 0, 1'600'000'600 * kSecond + 9},
      {"ro/f", S_IFREG, 0644, 0, 0, 1'600'000'601 * kSecond + 10},
  };
  for (const Expect& e : expected) {
    const std::string path = e.rel.empty() ? out : out + "/" + e.rel;
    FileInfo st = LStat(path);
    ASSERT_TRUE(st.exists) << path;
    EXPECT_EQ(st.type, e.type) << path;
    if (e.type != S_IFLNK) {
      EXPECT_EQ(st.mode, e.mode) << path;
    }
    EXPECT_EQ(st.mtime_ns, e.mtime_ns) << path;
    EXPECT_EQ(st.atime_ns, e.mtime_ns - 7 * kSecond + 3) << path;
    if (kRoot) {
      EXPECT_EQ(st.uid, e.uid) << path;
      EXPECT_EQ(st.gid, e.gid) << path;
    }
  }
  EXPECT_FALSE(LStat(out + "/fifo").exists);
  EXPECT_EQ(Names(out).size(), expected.size() - 1);

  EXPECT_EQ(testing::ReadFileOrDie(out + "/data/big.bin"), tree.big);
  EXPECT_EQ(testing::ReadFileOrDie(out + "/data/empty"), "");
  EXPECT_EQ(testing::ReadFileOrDie(out + "/bin/tool"), tree.tool);
  EXPECT_EQ(testing::ReadFileOrDie(out + "/nested/a/b/leaf.txt"), tree.leaf);
  EXPECT_EQ(testing::ReadFileOrDie(out + "/ro/f"), tree.ro);
  EXPECT_EQ(fs::read_symlink(out + "/evil").string(), "../../etc/passwd");
  EXPECT_TRUE(Temporaries(scratch_.path()).empty());

  // Again over the restored tree: merged in place, same result.
  FileRestorer again(&source, Options());
  ASSERT_TRUE(again.Restore("/srv", out).ok());
  EXPECT_EQ(Names(out).size(), expected.size() - 1);
  EXPECT_EQ(testing::ReadFileOrDie(out + "/data/big.bin"), tree.big);
  EXPECT_EQ(LStat(out + "/ro").mode, 0555u);
  EXPECT_TRUE(Temporaries(scratch_.path()).empty());
}

TEST_P(FileRestoreTest, RestoresOneFileAndOneSymlink) {
  FakeSource source;
  Tree tree;
  tree.AddTo(&source);
  FileRestorer restorer(&source, Options());
  auto stats = restorer.Restore("//srv/./bin/tool", scratch_.Sub("tool"));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 1u);
  FileInfo st = LStat(scratch_.Sub("tool"));
  EXPECT_EQ(st.type, static_cast<mode_t>(S_IFREG));
  EXPECT_EQ(st.mode, 04755u);
  EXPECT_EQ(st.mtime_ns, 1'600'000'301 * kSecond + 500'000'001);
  if (kRoot) {
    EXPECT_EQ(st.uid, 1234u);
  }
  EXPECT_EQ(testing::ReadFileOrDie(scratch_.Sub("tool")), tree.tool);

  ASSERT_TRUE(restorer.Restore("/srv/evil", scratch_.Sub("evil")).ok());
  EXPECT_EQ(LStat(scratch_.Sub("evil")).type, static_cast<mode_t>(S_IFLNK));
  EXPECT_EQ(LStat(scratch_.Sub("evil")).mtime_ns, 1'600'000'400 * kSecond + 77);
  EXPECT_EQ(fs::read_symlink(scratch_.Sub("evil")).string(),
            "../../etc/passwd");
  EXPECT_TRUE(Temporaries(scratch_.path()).empty());
}

TEST_P(FileRestoreTest, ReplacesSymlinksAtTheDestinationWithoutFollowing) {
  FakeSource source;
  Tree tree;
  tree.AddTo(&source);
  const std::string outside = scratch_.Sub("outside");
  fs::create_directory(outside);
  testing::WriteFileOrDie(outside + "/passwd", "keep\n");
  const std::string dest = scratch_.Sub("dest");
  fs::create_directory(dest);

  // A file onto a symlink pointing outside.
  fs::create_symlink(outside + "/passwd", dest + "/tool");
  FileRestorer restorer(&source, Options());
  ASSERT_TRUE(restorer.Restore("/srv/bin/tool", dest + "/tool").ok());
  EXPECT_EQ(LStat(dest + "/tool").type, static_cast<mode_t>(S_IFREG));
  EXPECT_EQ(testing::ReadFileOrDie(dest + "/tool"), tree.tool);

  // A directory onto a symlink to a directory outside, and into a
  // directory whose children are symlinks pointing outside.
  fs::create_directory_symlink(outside, dest + "/tree");
  ASSERT_TRUE(restorer.Restore("/srv", dest + "/tree").ok());
  EXPECT_EQ(LStat(dest + "/tree").type, static_cast<mode_t>(S_IFDIR));
  fs::create_directory(dest + "/merge");
  fs::create_directory_symlink(outside, dest + "/merge/data");
  fs::create_symlink(outside + "/passwd", dest + "/merge/evil");
  fs::create_symlink(outside + "/passwd", dest + "/merge/ro");
  ASSERT_TRUE(restorer.Restore("/srv", dest + "/merge").ok());
  EXPECT_EQ(LStat(dest + "/merge/data").type, static_cast<mode_t>(S_IFDIR));
  EXPECT_EQ(testing::ReadFileOrDie(dest + "/merge/data/big.bin"), tree.big);
  EXPECT_EQ(fs::read_symlink(dest + "/merge/evil").string(),
            "../../etc/passwd");
  EXPECT_EQ(LStat(dest + "/merge/ro").type, static_cast<mode_t>(S_IFDIR));

  // Nothing outside changed.
  EXPECT_EQ(testing::ReadFileOrDie(outside + "/passwd"), "keep\n");
  EXPECT_EQ(Names(outside), std::set<std::string>{"passwd"});
  EXPECT_TRUE(Temporaries(scratch_.path()).empty());
}

TEST_P(FileRestoreTest, RefusesHostileNamesBeforeWritingAnything) {
  const std::vector<std::string> hostile = {"/d/..",
                                            "/d/.",
                                            "/d/",
                                            "/d/a/b",
                                            "/etc/passwd",
                                            "/dx/y",
                                            std::string("/d/nul\0x", 8)};
  for (const std::string& bad : hostile) {
    for (bool deep : {false, true}) {
      SCOPED_TRACE(StrCat(bad, deep ? " (in a subdirectory)" : ""));
      FakeSource source;
      source.AddDir("/d", 0755, 0, 0, kSecond);
      source.AddFile("/d/aaa", "listed before the bad name", 0644, 0, 0,
                     kSecond);
      source.AddDir("/d/sub", 0755, 0, 0, kSecond);
      BackupFileEntry e;
      e.type = Type::kRegular;
      e.mode = 0644;
      if (deep) {
        // The same name one level down.
        e.path = bad.rfind("/d", 0) == 0 ? "/d/sub" + bad.substr(2) : bad;
        source.Inject("/d/sub", e);
      } else {
        e.path = bad;
        source.Inject("/d", e);
      }
      const std::string out = scratch_.Sub("hostile");
      FileRestorer restorer(&source, Options());
      auto stats = restorer.Restore("/d", out);
      ASSERT_FALSE(stats.ok());
      EXPECT_EQ(stats.status().code(), absl::StatusCode::kDataLoss)
          << stats.status();
      EXPECT_NE(std::string(stats.status().message()).find("path traversal"),
                std::string::npos)
          << stats.status();
      EXPECT_EQ(source.reads(), 0);
      EXPECT_FALSE(LStat(out).exists);
      EXPECT_TRUE(Names(scratch_.path()).empty());
    }
  }
}

TEST_P(FileRestoreTest, AFailureMidwayLeavesNoTemporaryFile) {
  FakeSource source;
  source.AddDir("/d", 0755, 0, 0, kSecond);
  source.AddFile("/d/a", "first", 0644, 0, 0, kSecond);
  source.AddFile("/d/b", testing::PseudoRandomBytes(1 << 20, 3), 0644, 0, 0,
                 kSecond);
  source.AddFile("/d/c", "never reached", 0644, 0, 0, kSecond);
  source.FailReadAfter("/d/b", 300 << 10,
                       absl::UnavailableError("media agent went away"));
  FileRestorer restorer(&source, Options());
  auto tree = restorer.Restore("/d", scratch_.Sub("out"));
  ASSERT_FALSE(tree.ok());
  EXPECT_EQ(tree.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Names(scratch_.Sub("out")), std::set<std::string>{"a"});
  EXPECT_TRUE(Temporaries(scratch_.path()).empty());

  auto single = restorer.Restore("/d/b", scratch_.Sub("b"));
  ASSERT_FALSE(single.ok());
  EXPECT_FALSE(LStat(scratch_.Sub("b")).exists);
  EXPECT_TRUE(Temporaries(scratch_.path()).empty());

  // A source whose data disagrees with its listing.
  FakeSource liar;
  liar.AddFile("/x", "twelve bytes", 0644, 0, 0, kSecond);
  liar.LieAboutSize("/x", 5);
  FileRestorer restorer2(&liar, Options());
  auto lied = restorer2.Restore("/x", scratch_.Sub("x"));
  ASSERT_FALSE(lied.ok());
  EXPECT_EQ(lied.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(LStat(scratch_.Sub("x")).exists);
  EXPECT_TRUE(Temporaries(scratch_.path()).empty());
}

TEST_P(FileRestoreTest, ACancelStopsMidFileWithoutATemporaryFile) {
  FakeSource source;
  source.AddFile("/big", testing::PseudoRandomBytes(2 << 20, 4), 0644, 0, 0,
                 kSecond);
  source.after_piece = [&](uint64_t delivered) {
    if (delivered >= (512u << 10)) cancel_.Cancel();
  };
  FileRestorer restorer(&source, Options());
  auto r = restorer.Restore("/big", scratch_.Sub("big"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(LStat(scratch_.Sub("big")).exists);
  EXPECT_TRUE(Temporaries(scratch_.path()).empty());
}

TEST_P(FileRestoreTest, RefusesADestinationWhoseParentIsASymlink) {
  FakeSource source;
  source.AddFile("/f", "data", 0644, 0, 0, kSecond);
  fs::create_directory(scratch_.Sub("real"));
  fs::create_directory_symlink(scratch_.Sub("real"), scratch_.Sub("alias"));
  FileRestorer restorer(&source, Options());
  auto r = restorer.Restore("/f", scratch_.Sub("alias") + "/f");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(r.status().message()).find("symlink"),
            std::string::npos);
  EXPECT_TRUE(Names(scratch_.Sub("real")).empty());

  auto missing = restorer.Restore("/f", scratch_.Sub("nope") + "/f");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST_P(FileRestoreTest, RefusesBadPathsAndAFileOntoADirectory) {
  FakeSource source;
  source.AddDir("/d", 0755, 0, 0, kSecond);
  source.AddFile("/d/f", "data", 0644, 0, 0, kSecond);
  FileRestorer restorer(&source, Options());
  for (const std::string& target :
       {std::string("relative/path"), std::string("/"),
        scratch_.path() + "/../escape", std::string()}) {
    auto r = restorer.Restore("/d/f", target);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << target;
  }
  for (const char* src : {"/../etc/passwd", "/d/../f", "d/f"}) {
    auto r = restorer.Restore(src, scratch_.Sub("x"));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << src;
  }
  EXPECT_EQ(restorer.Restore("/d/missing", scratch_.Sub("x")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(source.reads(), 0);

  fs::create_directory(scratch_.Sub("taken"));
  auto onto_dir = restorer.Restore("/d/f", scratch_.Sub("taken"));
  EXPECT_EQ(onto_dir.status().code(), absl::StatusCode::kFailedPrecondition)
      << onto_dir.status();
  EXPECT_TRUE(Names(scratch_.Sub("taken")).empty());
  EXPECT_TRUE(Temporaries(scratch_.path()).empty());
}

// Lends a FakeSource to a job (which owns what ConnectFiles returns).
class LentSource final : public BackupFileSource {
 public:
  explicit LentSource(BackupFileSource* base) : base_(base) {}
  StatusOr<BackupDirectoryListing> List(const std::string& path) override {
    return base_->List(path);
  }
  Status Read(const std::string& path,
              const std::function<Status(const BackupFileEntry&)>& on_entry,
              const std::function<Status(std::string_view)>& on_data) override {
    return base_->Read(path, on_entry, on_data);
  }

 private:
  BackupFileSource* const base_;
};

class FakeConnector final : public MediaConnector {
 public:
  explicit FakeConnector(BackupFileSource* source) : source_(source) {}
  StatusOr<std::unique_ptr<MediaLink>> Connect(
      const MediaSessionSpec&) override {
    return absl::UnimplementedError("no data path in this test");
  }
  StatusOr<std::unique_ptr<BackupFileSource>> ConnectFiles(
      const MediaSessionSpec& spec,
      std::optional<uint32_t> partition) override {
    ticket = spec.ticket;
    this->partition = partition;
    return std::unique_ptr<BackupFileSource>(
        std::make_unique<LentSource>(source_));
  }
  std::string ticket;
  std::optional<uint32_t> partition;

 private:
  BackupFileSource* const source_;
};

TEST(FileRestoreJobTest, RunsThroughTheConnectorWithProgressAndSafeErrors) {
  FakeSource source;
  Tree tree;
  tree.AddTo(&source);
  FakeConnector connector(&source);
  testing::ScratchDir scratch;
  CancellationFlag cancel;
  std::shared_ptr<const ProgressCounter> counter;
  JobContext context;
  context.cancel = &cancel;
  context.on_started = [&](std::shared_ptr<const ProgressCounter> c) {
    counter = std::move(c);
  };
  FileRestoreJob job;
  job.job_id = 9;
  job.backup_id = "pc-1-20260101T000000Z-abcd";
  job.partition = 1;
  job.source_path = "/srv/data";
  job.target_path = scratch.Sub("data");
  job.media.ticket = "browse ticket";
  JobOutcome out = ExecuteJob(AgentJob(job), &connector, context);
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.job_id, 9u);
  EXPECT_EQ(out.backup_id, job.backup_id);
  EXPECT_EQ(connector.ticket, "browse ticket");
  EXPECT_EQ(connector.partition, std::optional<uint32_t>(1));
  ASSERT_NE(counter, nullptr);
  EXPECT_EQ(counter->Snapshot().total_bytes, tree.big.size());
  EXPECT_EQ(counter->Snapshot().done_bytes, tree.big.size());
  EXPECT_EQ(testing::ReadFileOrDie(scratch.Sub("data/big.bin")), tree.big);

  // A hostile name that is not UTF-8: refused, and the error (quoting it)
  // still fits the JobResult's proto3 string.
  BackupFileEntry bad;
  bad.path = "/srv/data/\xff\xfe/x";
  bad.type = Type::kRegular;
  source.Inject("/srv/data", bad);
  job.job_id = 10;
  job.target_path = scratch.Sub("data2");
  out = ExecuteJob(AgentJob(job), &connector, context);
  ASSERT_FALSE(out.ok);
  EXPECT_NE(out.error.find("path traversal"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("\\xff\\xfe/x"), std::string::npos) << out.error;
  v1::JobResult parsed;
  ASSERT_TRUE(
      parsed.ParseFromString(JobResultToProto(out).SerializeAsString()));
  EXPECT_EQ(parsed.error(), out.error);
  EXPECT_FALSE(LStat(scratch.Sub("data2")).exists);

  // Cancelled before it starts.
  cancel.Cancel();
  job.job_id = 11;
  out = ExecuteJob(AgentJob(job), &connector, context);
  EXPECT_FALSE(out.ok);
  EXPECT_TRUE(out.cancelled);
}

INSTANTIATE_TEST_SUITE_P(OpenPaths, FileRestoreTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ComponentWalk" : "Openat2";
                         });

}  // namespace
}  // namespace cairn
