// Crash-consistency tests in the style of LevelDB's fault_injection_test:
// run a backup through a FaultInjectionEnv, "crash" (drop unsynced data,
// undo unsynced renames and creations), reopen, and check that everything
// committed is intact and nothing partial is visible.
#include <gtest/gtest.h>

#include "agent/backup_pipeline.h"
#include "agent/image_restore.h"
#include "common/chunk_format.h"
#include "common/image_reader.h"
#include "media_agent/repository.h"
#include "media_agent/verifier.h"
#include "tests/testing/fault_injection_env.h"
#include "tests/testing/forwarding_sink.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

class CrashConsistencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RepositoryOptions o;
    o.create_if_missing = true;
    ASSERT_TRUE(
        Repository::Open(root_, o).ok());  // created durably by the real Env
    image_ = dir_.Sub("image");
    std::string data = testing::TextLikeBytes(600 << 10, 1) +
                       std::string(200 << 10, '\0') +
                       testing::PseudoRandomBytes(300 << 10, 2);
    testing::WriteFileOrDie(image_, data);
  }

  std::unique_ptr<Repository> Open() {
    RepositoryOptions o;
    o.env = &env_;
    auto r = Repository::Open(root_, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : nullptr;
  }

  StatusOr<BackupResult> Backup(Repository* repo, const std::string& id) {
    BackupRequest req;
    req.source_path = image_;
    req.source_name = "host";
    req.backup_id = id;
    req.chunk_size = 64 << 10;
    req.threads = 2;
    auto session = repo->BeginBackup();
    return RunBackup(req, session.get());
  }

  // Every chunk file left in the store must be complete and valid.
  void ExpectNoPartialChunks(Repository* repo) {
    int n = 0;
    ASSERT_TRUE(repo->chunks()
                    .ForEach([&](const ChunkId& id) {
                      auto got = repo->chunks().Get(id);
                      EXPECT_TRUE(got.ok()) << got.status();
                      ++n;
                      return absl::OkStatus();
                    })
                    .ok());
    auto tmp = Env::Default()->GetChildren(root_ + "/tmp");
    ASSERT_TRUE(tmp.ok());
    EXPECT_TRUE(tmp->empty()) << "temp files survived reopen";
  }

  void ExpectRestoresExactly(Repository* repo, const std::string& id) {
    auto reader = ImageReader::Open(repo, id, nullptr);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::string out = dir_.Sub("restored");
    ASSERT_TRUE(RestoreImage(reader->get(), out, {}).ok());
    EXPECT_EQ(testing::ReadFileOrDie(out), testing::ReadFileOrDie(image_));
  }

  testing::ScratchDir dir_;
  std::string root_ = dir_.Sub("repo");
  std::string image_;
  testing::FaultInjectionEnv env_{Env::Default()};
};

TEST_F(CrashConsistencyTest, CommittedBackupSurvivesCrash) {
  auto repo = Open();
  ASSERT_TRUE(Backup(repo.get(), "b1").ok());
  repo.reset();
  ASSERT_TRUE(env_.SimulateCrash().ok());
  repo = Open();
  ExpectNoPartialChunks(repo.get());
  ExpectRestoresExactly(repo.get(), "b1");
  auto report = VerifyRepository(repo.get(), {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
}

TEST_F(CrashConsistencyTest, CrashBeforeCommitLeavesNoBackupAndNoPartialChunk) {
  auto repo = Open();
  {
    // Store the chunks, but "crash" before the manifest is committed.
    BackupRequest req;
    req.source_path = image_;
    req.source_name = "host";
    req.backup_id = "b1";
    req.chunk_size = 64 << 10;
    class NoCommit : public testing::ForwardingSink {
     public:
      using ForwardingSink::ForwardingSink;
      Status Commit(const std::string&, std::string_view) override {
        return absl::AbortedError("crash before commit");
      }
    };
    auto session = repo->BeginBackup();
    NoCommit sink(session.get());
    EXPECT_EQ(RunBackup(req, &sink).status().code(),
              absl::StatusCode::kAborted);
  }
  repo.reset();
  ASSERT_TRUE(env_.SimulateCrash().ok());
  repo = Open();
  EXPECT_TRUE(repo->manifests().List()->empty());
  ExpectNoPartialChunks(repo.get());
  // The next attempt completes and restores exactly.
  ASSERT_TRUE(Backup(repo.get(), "b1").ok());
  ExpectRestoresExactly(repo.get(), "b1");
}

TEST_F(CrashConsistencyTest,
       FailedSyncOrWriteFailsTheBackupAndLeavesNothingVisible) {
  for (int fault = 0; fault < 3; ++fault) {
    auto repo = Open();
    if (fault == 0) env_.FailSyncs(1);
    if (fault == 1) env_.FailWrites(1);
    if (fault == 2) env_.FailRenames(1);
    auto r = Backup(repo.get(), "b" + std::to_string(fault));
    EXPECT_FALSE(r.ok()) << "fault " << fault;
    env_.ClearFaults();
    EXPECT_FALSE(*repo->manifests().Exists("b" + std::to_string(fault)));
    repo.reset();
    ASSERT_TRUE(env_.SimulateCrash().ok());
    repo = Open();
    ExpectNoPartialChunks(repo.get());
  }
  auto repo = Open();
  ASSERT_TRUE(Backup(repo.get(), "ok").ok());
  ExpectRestoresExactly(repo.get(), "ok");
}

TEST_F(CrashConsistencyTest, DiskFullIsResourceExhaustedAndRecoverable) {
  auto repo = Open();
  env_.SetDiskSpace(150 << 10);  // room for a few chunks only
  auto r = Backup(repo.get(), "full");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
      << r.status();
  EXPECT_FALSE(*repo->manifests().Exists("full"));
  env_.ClearFaults();
  repo.reset();
  repo = Open();  // reopening cleans the temp files the failure left
  ExpectNoPartialChunks(repo.get());
  ASSERT_TRUE(Backup(repo.get(), "full").ok());
  ExpectRestoresExactly(repo.get(), "full");
}

TEST_F(CrashConsistencyTest, FailedDirectorySyncAtCommitWritesNoManifest) {
  auto repo = Open();
  // The chunk files' own fsyncs succeed; the first directory sync (at
  // commit) fails, so the manifest must not be written.
  BackupRequest req;
  req.source_path = image_;
  req.source_name = "host";
  req.backup_id = "b1";
  req.chunk_size = 64 << 10;
  auto session = repo->BeginBackup();
  // Store everything first, then make the next sync (a directory's) fail.
  class FailAtCommit : public testing::ForwardingSink {
   public:
    FailAtCommit(ChunkSink* s, testing::FaultInjectionEnv* env)
        : ForwardingSink(s), env_(env) {}
    Status Commit(const std::string& id, std::string_view m) override {
      env_->FailSyncs(1);
      return ForwardingSink::Commit(id, m);
    }
    testing::FaultInjectionEnv* env_;
  } sink(session.get(), &env_);
  EXPECT_FALSE(RunBackup(req, &sink).ok());
  env_.ClearFaults();
  EXPECT_FALSE(*repo->manifests().Exists("b1"));
  session.reset();
  repo.reset();
  ASSERT_TRUE(env_.SimulateCrash().ok());
  repo = Open();
  EXPECT_TRUE(repo->manifests().List()->empty());
  ExpectNoPartialChunks(repo.get());
}

}  // namespace
}  // namespace cairn
