// Image restore to a target (agent/image_restore.h, agent/job_execution.h):
// a resumed restore rewrites only the chunks the target lacks and ends
// byte-exact; verification re-reads the target and catches a corruption
// made after the writes; a restore asking for a reboot on an agent without
// reboot_command fails before touching the target; the reboot command is
// started detached; agent.yaml's reboot_command is parsed and checked.
#include "agent/image_restore.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "agent/agent_config.h"
#include "agent/job_execution.h"
#include "common/image_reader.h"
#include "common/strings.h"
#include "tests/unit/repo_fixture.h"

namespace cairn {
namespace {

constexpr uint32_t kChunk = 64 << 10;

// 12 data chunks, 4 zero chunks (indices 4-7), 4 more data chunks, and a
// short last chunk.
std::string TestImage() {
  return testing::PseudoRandomBytes(4 * kChunk, 1) +
         std::string(4 * kChunk, '\0') +
         testing::PseudoRandomBytes(8 * kChunk + 5000, 2);
}
constexpr uint64_t kChunks = 17;
constexpr uint64_t kZeroChunks = 4;

void Overwrite(const std::string& path, uint64_t offset,
               const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)),
            static_cast<ssize_t>(data.size()));
  ::close(fd);
}

class ImageRestoreTest : public RepoFixture {
 protected:
  void SetUp() override {
    RepoFixture::SetUp();
    image_ = TestImage();
    BackupData("b1", image_);
    auto reader = ImageReader::Open(repo_.get(), "b1", nullptr);
    ASSERT_TRUE(reader.ok()) << reader.status();
    reader_ = *std::move(reader);
    ASSERT_EQ(reader_->manifest().chunks.size(), kChunks);
  }

  StatusOr<RestoreStats> Restore(const std::string& target, bool resume,
                                 std::function<Status()> hook = nullptr) {
    RestoreOptions o;
    o.threads = 3;
    o.resume = resume;
    o.verify = true;
    o.before_verify = std::move(hook);
    o.progress = &progress_;
    return RestoreImage(reader_.get(), target, o);
  }

  std::string image_;
  std::unique_ptr<ImageReader> reader_;
  ProgressCounter progress_{0};
};

TEST_F(ImageRestoreTest, ResumeRewritesExactlyTheCorruptedChunk) {
  const std::string target = dir_.Sub("target.img");
  auto first = Restore(target, /*resume=*/false);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->chunks_written, kChunks - kZeroChunks);
  EXPECT_TRUE(first->verified);
  ASSERT_EQ(testing::ReadFileOrDie(target), image_);

  // Damage chunk 9 (data) in the middle.
  Overwrite(target, 9 * kChunk + 100, std::string(3000, 'X'));
  auto again = Restore(target, /*resume=*/true);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->chunks_written, 1u);
  EXPECT_EQ(again->bytes_written, kChunk);
  EXPECT_EQ(again->chunks_skipped, kChunks - 1);
  EXPECT_EQ(again->bytes_skipped, image_.size() - kChunk);
  EXPECT_EQ(again->bytes_verified, image_.size());
  EXPECT_EQ(testing::ReadFileOrDie(target), image_);
}

TEST_F(ImageRestoreTest, ResumeRewritesAZeroChunkThatIsNotZero) {
  const std::string target = dir_.Sub("target.img");
  ASSERT_TRUE(Restore(target, false).ok());
  Overwrite(target, 5 * kChunk + 7, "not zero");
  auto again = Restore(target, /*resume=*/true);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->chunks_written, 1u);
  EXPECT_EQ(again->chunks_skipped, kChunks - 1);
  EXPECT_EQ(testing::ReadFileOrDie(target), image_);
}

TEST_F(ImageRestoreTest, ResumeOnAnEmptyTargetWritesEverything) {
  // A target that does not exist, and one that exists but is empty.
  for (const std::string& target :
       {dir_.Sub("new.img"), dir_.Sub("empty.img")}) {
    if (target == dir_.Sub("empty.img")) testing::WriteFileOrDie(target, "");
    auto r = Restore(target, /*resume=*/true);
    ASSERT_TRUE(r.ok()) << r.status();
    // Every data chunk is written; the zero chunks already read as zeros.
    EXPECT_EQ(r->chunks_written, kChunks - kZeroChunks) << target;
    EXPECT_EQ(r->chunks_skipped, kZeroChunks) << target;
    EXPECT_EQ(testing::ReadFileOrDie(target), image_) << target;
  }
}

TEST_F(ImageRestoreTest, ResumeShrinksALongerTarget) {
  const std::string target = dir_.Sub("long.img");
  testing::WriteFileOrDie(target, image_ + std::string(3 * kChunk, 'Z'));
  auto r = Restore(target, /*resume=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks_written, 0u);
  EXPECT_EQ(testing::ReadFileOrDie(target), image_);
}

TEST_F(ImageRestoreTest, ProgressCountsTheWriteAndTheVerifyPhase) {
  const std::string target = dir_.Sub("target.img");
  ASSERT_TRUE(Restore(target, false).ok());
  EXPECT_EQ(progress_.Snapshot().done_bytes, 2 * image_.size());
}

TEST_F(ImageRestoreTest, VerifyCatchesACorruptionAfterTheWrites) {
  const std::string target = dir_.Sub("target.img");
  const uint64_t bad_offset = 11 * kChunk;
  auto r = Restore(target, false, [&]() -> Status {
    Overwrite(target, bad_offset + 4096, "corrupted under the restore");
    return absl::OkStatus();
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_NE(r.status().message().find(StrCat("offset ", bad_offset)),
            std::string::npos)
      << r.status();
}

TEST_F(ImageRestoreTest, VerifyCatchesDataInAZeroChunk) {
  const std::string target = dir_.Sub("target.img");
  auto r = Restore(target, false, [&]() -> Status {
    Overwrite(target, 6 * kChunk, "x");
    return absl::OkStatus();
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
}

TEST_F(ImageRestoreTest, NoVerifyDoesNotReadBack) {
  const std::string target = dir_.Sub("target.img");
  RestoreOptions o;
  o.verify = false;
  bool called = false;
  o.before_verify = [&]() -> Status {
    called = true;
    return absl::OkStatus();
  };
  auto r = RestoreImage(reader_.get(), target, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->verified);
  EXPECT_FALSE(called);
  EXPECT_EQ(testing::ReadFileOrDie(target), image_);
}

TEST_F(ImageRestoreTest, EncryptedBackupResumesWithKeyedIds) {
  DataKey key = DataKey::Generate();
  BackupData("enc", image_, "", &key);
  auto reader = ImageReader::Open(repo_.get(), "enc", &key);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const std::string target = dir_.Sub("enc.img");
  RestoreOptions o;
  o.key = &key;
  o.verify = true;
  ASSERT_TRUE(RestoreImage(reader->get(), target, o).ok());
  Overwrite(target, 2 * kChunk, "Y");
  o.resume = true;
  auto r = RestoreImage(reader->get(), target, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks_written, 1u);
  EXPECT_EQ(testing::ReadFileOrDie(target), image_);
  // Without the key the ids cannot be computed.
  o.key = nullptr;
  EXPECT_EQ(RestoreImage(reader->get(), target, o).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// A connector that must never be used.
class UnusedConnector final : public MediaConnector {
 public:
  StatusOr<std::unique_ptr<MediaLink>> Connect(
      const MediaSessionSpec&) override {
    ++connects;
    return absl::UnavailableError("the test connector is not connected");
  }
  int connects = 0;
};

TEST(RestoreJobRebootTest, RebootWithoutCommandFailsBeforeWriting) {
  testing::ScratchDir dir;
  const std::string existing = dir.Sub("disk.img");
  testing::WriteFileOrDie(existing, "previous contents");
  const std::string missing = dir.Sub("new.img");
  CancellationFlag cancel;
  JobContext context;
  context.cancel = &cancel;  // reboot_command empty
  for (const std::string& target : {existing, missing}) {
    UnusedConnector connector;
    RestoreJob job;
    job.job_id = 7;
    job.backup_id = "b1";
    job.target_path = target;
    job.reboot = true;
    JobOutcome out = ExecuteRestoreJob(job, &connector, context);
    EXPECT_FALSE(out.ok);
    EXPECT_EQ(out.error,
              "reboot requested but this agent has no reboot_command "
              "configured");
    EXPECT_TRUE(out.run_after_report.empty());
    EXPECT_EQ(connector.connects, 0);
  }
  EXPECT_EQ(testing::ReadFileOrDie(existing), "previous contents");
  struct stat st;
  EXPECT_NE(::stat(missing.c_str(), &st), 0);
}

TEST(StartDetachedTest, RunsTheCommandWithoutWaitingForIt) {
  testing::ScratchDir dir;
  const std::string fifo = dir.Sub("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // The command blocks until we read: StartDetached must return first.
  ASSERT_TRUE(
      StartDetached({"/bin/sh", "-c", "echo rebooting > \"$0\"", fifo}).ok());
  std::ifstream in(fifo);  // blocks until the command opens it
  std::string got((std::istreambuf_iterator<char>(in)),
                  std::istreambuf_iterator<char>());
  EXPECT_EQ(got, "rebooting\n");
}

TEST(StartDetachedTest, ReportsAProgramThatCannotRun) {
  EXPECT_EQ(StartDetached({"/nonexistent/reboot"}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(StartDetached({"reboot"}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StartDetached({}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(AgentConfigRebootTest, ParsesAndChecksRebootCommand) {
  const std::string base = "server: \"s:1\"\nidentity: \"pc\"\n";
  auto none = ParseAgentConfig(base, "agent.yaml");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->reboot_command.empty());

  auto set = ParseAgentConfig(
      base + "reboot_command: [\"/sbin/shutdown\", \"-r\", \"now\"]\n",
      "agent.yaml");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->reboot_command,
            (std::vector<std::string>{"/sbin/shutdown", "-r", "now"}));
  // Round trip through the encoder.
  auto again = ParseAgentConfig(EncodeAgentConfig(*set), "agent.yaml");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->reboot_command, set->reboot_command);

  for (const char* bad :
       {"reboot_command: \"/sbin/reboot\"\n", "reboot_command: [\"reboot\"]\n",
        "reboot_command: [[\"/sbin/reboot\"]]\n"}) {
    auto r = ParseAgentConfig(base + bad, "agent.yaml");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("reboot_command"), std::string::npos)
        << r.status();
  }
}

}  // namespace
}  // namespace cairn
