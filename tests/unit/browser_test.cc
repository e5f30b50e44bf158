// The media agent's Browser (media_agent/browser.h) on a real backup of a
// real ext4 disk image: tickets, live listing before the catalogue, the
// catalogue after a commit, reads through extents and through the mount,
// traversal and symlink refusals, and a read-only store.
//
// Needs root, /dev/fuse, loop devices, nbdkit, nbdfuse and mke2fs; skips
// otherwise. Compiled a second time with CAIRN_BROWSER_SANDBOX=1 as
// cairn_browser_sandbox_tests (label e2e): the same tests against the
// sandboxed path (a libguestfs appliance, no host mount).
#include "media_agent/browser.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/crypto.h"
#include "common/key_wrap.h"
#include "common/strings.h"
#include "media_agent/nbd_export.h"
#include "tests/testing/test_certs.h"
#include "tests/unit/repo_fixture.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;

#ifdef CAIRN_BROWSER_SANDBOX
constexpr bool kSandbox = true;
#else
constexpr bool kSandbox = false;
#endif

int Shell(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str());
}

std::string SkipReason() {
  if (kSandbox) {
    if (Shell("command -v qemu-system-x86_64") != 0) return "no qemu";
  } else {
    if (::geteuid() != 0) return "needs root (loop devices and mounts)";
    for (const char* dev : {"/dev/fuse", "/dev/loop-control"}) {
      if (::access(dev, F_OK) != 0) return StrCat("no ", dev);
    }
    if (Shell("command -v nbdfuse") != 0) return "no nbdfuse";
  }
  for (const char* tool : {"nbdkit", "mke2fs", "sfdisk"}) {
    if (Shell(StrCat("command -v ", tool)) != 0) return StrCat("no ", tool);
  }
  if (!FindNbdPlugin().ok()) return "the Cairn nbdkit plugin is not built";
  return "";
}

std::map<std::string, std::string> HashTree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string data = testing::ReadFileOrDie(e.path().string());
    auto d = crypto::Sha256(data);
    out[e.path().string()] = std::string(crypto::AsStringView(d));
  }
  return out;
}

class BrowserTest : public RepoFixture {
 protected:
  void SetUp() override {
    const std::string why = SkipReason();
    if (!why.empty()) GTEST_SKIP() << why;
    RepoFixture::SetUp();
    server_ = testing::MakeSelfSignedEcCert("server");
    media_ = testing::MakeSelfSignedEcCert("media-1");
    key_ = std::make_unique<DataKey>(DataKey::Generate());

    // Source tree: a big file (extents), small files (inline data: read
    // through the mount), a symlink out of the tree, nested directories.
    src_ = dir_.Sub("src");
    fs::create_directories(src_ + "/etc/ssh");
    fs::create_directories(src_ + "/home/alice/docs");
    testing::WriteFileOrDie(src_ + "/etc/hostname", "browse-pc\n");
    testing::WriteFileOrDie(src_ + "/etc/ssh/sshd_config", "Port 22\n");
    big_ = crypto::RandomString(3 << 20);
    testing::WriteFileOrDie(src_ + "/home/alice/docs/report.bin", big_);
    ::chmod((src_ + "/home/alice/docs/report.bin").c_str(), 0640);
    fs::create_symlink("../../../etc/shadow", src_ + "/home/alice/escape");

    const std::string part = dir_.Sub("p1.img");
    const std::string disk = dir_.Sub("disk.img");
    ASSERT_EQ(Shell(StrCat("mke2fs -q -F -t ext4 -O inline_data -d ", src_, " ",
                           part, " 48M")),
              0);
    ASSERT_EQ(Shell(StrCat("truncate -s 50M ", disk)), 0);
    ASSERT_EQ(Shell(StrCat(
                  "echo 'start=2048, size=98304, type=83' | sfdisk -q ", disk)),
              0);
    ASSERT_EQ(Shell(StrCat("dd if=", part, " of=", disk,
                           " bs=1M seek=1 conv=notrunc,sparse")),
              0);
    std::string image = testing::ReadFileOrDie(disk);
    BackupData("b1", image, "", key_.get(), "pc-1");

    BrowserOptions o;
    o.repo_root = repo_->root();
    o.media_id = "media-1";
    o.server_cert_pem = server_.cert_pem;
    o.media_key_pem = media_.key_pem;
    o.runtime_dir = dir_.Sub("run");
    o.idle_timeout = std::chrono::seconds(60);
    o.sandbox = kSandbox;
    auto b = Browser::Create(std::move(o));
    ASSERT_TRUE(b.ok()) << b.status();
    browser_ = *std::move(b);
  }

  void TearDown() override {
    if (browser_) browser_->Shutdown();
  }

  std::string Ticket(
      SessionTicket::Operation op = SessionTicket::Operation::kBrowse,
      const std::string& caller = "helpdesk-1",
      const std::string& media = "media-1", int64_t ttl_us = 3'600'000'000LL) {
    SessionTicket t;
    t.operation = op;
    t.client_id = caller;
    t.backup_id = "b1";
    t.media_id = media;
    t.expires_unix_us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count() +
                        ttl_us;
    auto wrapped = WrapKey(key_->secret(), media_.cert_pem);
    EXPECT_TRUE(wrapped.ok());
    t.wrapped_key = *wrapped;
    auto s = SignTicket(t, server_.key_pem);
    EXPECT_TRUE(s.ok());
    return *s;
  }

  std::string ReadAll(const std::string& path, Status* status) {
    std::string out;
    *status = browser_->Read(
        "helpdesk-1", Ticket(), std::nullopt, path, 0, 0,
        [](const v1::FileEntry&) { return Status(); },
        [&](std::string_view d) {
          out.append(d);
          return Status();
        });
    return out;
  }

  testing::TestKeyPair server_, media_;
  std::unique_ptr<DataKey> key_;
  std::string src_, big_;
  std::unique_ptr<Browser> browser_;
};

TEST_F(BrowserTest, ListsLiveFirstThenFromTheCatalogueItRecords) {
  auto live = browser_->List("helpdesk-1", Ticket(), std::nullopt, "/etc");
  ASSERT_TRUE(live.ok()) << live.status();
  // The host path answers from the live mount at once; the sandbox records
  // the catalogue first (the appliance launch dominates anyway).
  EXPECT_EQ(live->from_catalogue, kSandbox);
  EXPECT_EQ(live->directory.path(), "/etc");
  std::vector<std::string> names;
  for (const auto& e : live->entries) names.push_back(e.path());
  EXPECT_EQ(names, (std::vector<std::string>{"/etc/hostname", "/etc/ssh"}));

  browser_->WaitForCatalogues();
  const std::string cfc = repo_->root() + "/catalogues/b1.cfc";
  ASSERT_TRUE(fs::exists(cfc));
  // Encrypted with the backup's key: no file name in clear.
  EXPECT_EQ(testing::ReadFileOrDie(cfc).find("sshd_config"), std::string::npos);

  auto listed = browser_->List("helpdesk-1", Ticket(), std::nullopt, "/etc/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->from_catalogue);
  ASSERT_EQ(listed->entries.size(), live->entries.size());
  for (size_t i = 0; i < listed->entries.size(); ++i) {
    EXPECT_EQ(listed->entries[i].path(), live->entries[i].path());
    EXPECT_EQ(listed->entries[i].size(), live->entries[i].size());
    EXPECT_EQ(listed->entries[i].mtime_ns(), live->entries[i].mtime_ns());
  }
  EXPECT_EQ(listed->filesystem.fs_type(), "ext4");
  EXPECT_EQ(listed->filesystem.offset(), 1u << 20);
}

TEST_F(BrowserTest, CatalogueAfterCommitAndFindUseIt) {
  if (kSandbox) GTEST_SKIP() << "the same Browser code as the host path";
  SessionTicket committed;
  committed.backup_id = "b1";
  committed.wrapped_key = *WrapKey(key_->secret(), media_.cert_pem);
  browser_->OnBackupCommitted(committed);
  browser_->WaitForCatalogues();
  ASSERT_TRUE(fs::exists(repo_->root() + "/catalogues/b1.cfc"));

  auto found =
      browser_->Find("helpdesk-1", Ticket(), "sshd_*", std::nullopt, 0);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->matches.size(), 1u);
  EXPECT_EQ(found->matches[0].first, 1u);
  EXPECT_EQ(found->matches[0].second.path(), "/etc/ssh/sshd_config");
  auto none =
      browser_->Find("helpdesk-1", Ticket(), "nothing*", std::nullopt, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->matches.empty());
  bool built_now = true;
  auto summary = browser_->Catalogue("helpdesk-1", Ticket(), false, &built_now);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_FALSE(built_now);
  ASSERT_EQ(summary->filesystems_size(), 1);
  EXPECT_EQ(summary->filesystems(0).entries_size(), 0);
}

TEST_F(BrowserTest, ReadsThroughExtentsAndThroughTheMountByteExact) {
  Status s;
  EXPECT_EQ(ReadAll("/home/alice/docs/report.bin", &s), big_);
  EXPECT_TRUE(s.ok()) << s;
  // A tiny file lives inline in its inode: no extents, read from the mount.
  EXPECT_EQ(ReadAll("/etc/hostname", &s), "browse-pc\n");
  EXPECT_TRUE(s.ok()) << s;

  v1::FileEntry entry;
  std::string range;
  s = browser_->Read(
      "helpdesk-1", Ticket(), 1u, "/home/alice/docs/report.bin", 1000, 5000,
      [&](const v1::FileEntry& e) {
        entry = e;
        return Status();
      },
      [&](std::string_view d) {
        range.append(d);
        return Status();
      });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(range, big_.substr(1000, 5000));
  EXPECT_EQ(entry.mode(), 0640u);
  // The sandbox cannot see extents: every read goes through the appliance.
  EXPECT_EQ(entry.extents_complete(), !kSandbox);
}

TEST_F(BrowserTest, RefusesTraversalSymlinksDirectoriesAndBadTickets) {
  if (kSandbox) GTEST_SKIP() << "the same Browser code as the host path";
  auto traversal =
      browser_->List("helpdesk-1", Ticket(), std::nullopt, "/etc/../..");
  EXPECT_TRUE(absl::IsInvalidArgument(traversal.status()))
      << traversal.status();
  EXPECT_NE(traversal.status().message().find("traversal"), std::string::npos);

  Status s;
  ReadAll("/home/alice/escape", &s);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("../../../etc/shadow"), std::string::npos) << s;
  ReadAll("/home/alice", &s);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  ReadAll("/no/such/file", &s);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  // A listing through the symlink is refused too (nothing follows it).
  auto through = browser_->List("helpdesk-1", Ticket(), std::nullopt,
                                "/home/alice/escape");
  EXPECT_FALSE(through.ok());

  auto other_caller =
      browser_->List("someone-else", Ticket(), std::nullopt, "/");
  EXPECT_TRUE(absl::IsPermissionDenied(other_caller.status()));
  auto restore_ticket =
      browser_->List("helpdesk-1", Ticket(SessionTicket::Operation::kRestore),
                     std::nullopt, "/");
  EXPECT_TRUE(absl::IsPermissionDenied(restore_ticket.status()));
  auto other_media = browser_->List(
      "helpdesk-1",
      Ticket(SessionTicket::Operation::kBrowse, "helpdesk-1", "media-2"),
      std::nullopt, "/");
  EXPECT_TRUE(absl::IsPermissionDenied(other_media.status()));
  auto expired = browser_->List(
      "helpdesk-1",
      Ticket(SessionTicket::Operation::kBrowse, "helpdesk-1", "media-1", -1),
      std::nullopt, "/");
  EXPECT_TRUE(absl::IsPermissionDenied(expired.status()));
  auto garbage =
      browser_->List("helpdesk-1", "not a ticket", std::nullopt, "/");
  EXPECT_TRUE(absl::IsInvalidArgument(garbage.status()));
  EXPECT_TRUE(absl::IsNotFound(
      browser_->List("helpdesk-1", Ticket(), 7u, "/").status()));
}

TEST_F(BrowserTest, BrowsingChangesNothingInTheStore) {
  auto before_chunks = HashTree(repo_->root() + "/chunks");
  auto before_manifests = HashTree(repo_->root() + "/manifests");
  Status s;
  ReadAll("/home/alice/docs/report.bin", &s);
  ASSERT_TRUE(s.ok()) << s;
  ReadAll("/etc/hostname", &s);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(
      browser_->List("helpdesk-1", Ticket(), std::nullopt, "/home").ok());
  browser_->WaitForCatalogues();
  EXPECT_EQ(HashTree(repo_->root() + "/chunks"), before_chunks);
  EXPECT_EQ(HashTree(repo_->root() + "/manifests"), before_manifests);
  browser_->Shutdown();
  EXPECT_EQ(browser_->mount_sessions(), 0u);
}

}  // namespace
}  // namespace cairn
