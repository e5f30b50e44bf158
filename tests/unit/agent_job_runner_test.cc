// The agent's job execution against a real media agent over mutual TLS 1.3
// on loopback: backup commands commit (full and incremental), restore
// commands restore byte-exact, a cancel mid-backup leaves no manifest, a
// bad ticket fails with the media agent's message, queued jobs can be
// cancelled before they start, and a stopping runner refuses new jobs.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>

#include "agent/grpc_media_connector.h"
#include "agent/job_runner.h"
#include "common/crypto.h"
#include "common/session_ticket.h"
#include "common/tls.h"
#include "tests/testing/forwarding_sink.h"
#include "tests/testing/loopback_media.h"
#include "tests/testing/test_certs.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

// Collects what a JobRunner reports; tests wait on results, never sleep.
class RecordingReporter final : public JobReporter {
 public:
  void ReportProgress(const JobProgressUpdate& u) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back({u.job_id, false});
    if (results_.count(u.job_id)) progress_after_result_ = true;
  }
  void ReportResult(const JobOutcome& o) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back({o.job_id, true});
    ++result_count_[o.job_id];
    results_[o.job_id] = o;
    cv_.notify_all();
  }
  JobOutcome WaitForResult(uint64_t job_id) {
    std::unique_lock<std::mutex> lock(mu_);
    bool got = cv_.wait_for(lock, std::chrono::seconds(60),
                            [&] { return results_.count(job_id) > 0; });
    EXPECT_TRUE(got) << "no result for job " << job_id;
    return got ? results_[job_id] : JobOutcome{};
  }
  int ResultCount(uint64_t job_id) {
    std::lock_guard<std::mutex> lock(mu_);
    return result_count_[job_id];
  }
  bool progress_after_result() {
    std::lock_guard<std::mutex> lock(mu_);
    return progress_after_result_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<uint64_t, bool>> events_;
  std::map<uint64_t, JobOutcome> results_;
  std::map<uint64_t, int> result_count_;
  bool progress_after_result_ = false;
};

// Wraps the real connector; the sink calls `on_put` before every PutChunk
// (on the pipeline's worker threads).
class HookedConnector final : public MediaConnector {
 public:
  explicit HookedConnector(MediaConnector* base) : base_(base) {}
  std::function<void()> on_put;

  StatusOr<std::unique_ptr<MediaLink>> Connect(
      const MediaSessionSpec& spec) override {
    CAIRN_ASSIGN_OR_RETURN(auto link, base_->Connect(spec));
    return std::unique_ptr<MediaLink>(
        std::make_unique<Link>(std::move(link), this));
  }

 private:
  class Sink final : public testing::ForwardingSink {
   public:
    Sink(ChunkSink* base, HookedConnector* owner)
        : ForwardingSink(base), owner_(owner) {}
    Status PutChunk(const ChunkId& id, std::string_view stored) override {
      if (owner_->on_put) owner_->on_put();
      return ForwardingSink::PutChunk(id, stored);
    }

   private:
    HookedConnector* owner_;
  };
  class Link final : public MediaLink {
   public:
    Link(std::unique_ptr<MediaLink> base, HookedConnector* owner)
        : base_(std::move(base)), sink_(base_->sink(), owner) {}
    ChunkSink* sink() override { return &sink_; }
    const ChunkSource* source() const override { return base_->source(); }

   private:
    std::unique_ptr<MediaLink> base_;
    Sink sink_;
  };
  MediaConnector* const base_;
};

class AgentJobRunnerTest : public testing::LoopbackMediaTest {
 protected:
  void SetUp() override {
    LoopbackMediaTest::SetUp();
    if (HasFatalFailure()) return;

    // The agent's own identity, as enrollment would have written it.
    auto tls = media_->ClientTlsFiles("pc1", Role::kAgent);
    ASSERT_TRUE(tls.ok()) << tls.status();
    connector_ = std::make_unique<GrpcMediaConnector>(*tls, address_);
    hooked_ = std::make_unique<HookedConnector>(connector_.get());
    secret_ = crypto::RandomString(32);
  }
  void TearDown() override {
    runner_.reset();
    LoopbackMediaTest::TearDown();
  }

  JobRunner* Runner(int threads = 0) {
    JobRunnerOptions o;
    o.source_name = "pc1";
    o.threads = threads;
    o.progress_interval = std::chrono::milliseconds(5);
    runner_ = std::make_unique<JobRunner>(hooked_.get(), &reporter_, o);
    return runner_.get();
  }

  BackupJob Backup(uint64_t job, const std::string& image,
                   const std::string& backup_id,
                   const std::string& parent = "") {
    BackupJob b;
    b.job_id = job;
    b.source_path = image;
    b.backup_id = backup_id;
    b.parent_backup_id = parent;
    b.chunk_size = 64 << 10;
    b.media = {"",
               Ticket(SessionTicket::Operation::kBackup, "pc1", backup_id, job,
                      parent),
               secret_};
    return b;
  }

  RestoreJob Restore(uint64_t job, const std::string& backup_id,
                     const std::string& target) {
    RestoreJob r;
    r.job_id = job;
    r.backup_id = backup_id;
    r.target_path = target;
    r.media = {
        address_,
        Ticket(SessionTicket::Operation::kRestore, "pc1", backup_id, job),
        secret_};
    return r;
  }

  std::unique_ptr<GrpcMediaConnector> connector_;
  std::unique_ptr<HookedConnector> hooked_;
  std::string secret_;
  RecordingReporter reporter_;
  std::unique_ptr<JobRunner> runner_;
};

TEST_F(AgentJobRunnerTest, BackupCommitsFullThenIncrementalAndRestores) {
  std::string data = testing::TextLikeBytes(3 << 20, 1) +
                     std::string(1 << 20, '\0') +
                     testing::PseudoRandomBytes(2 << 20, 2);
  std::string image = dir_.Sub("image");
  testing::WriteFileOrDie(image, data);
  JobRunner* runner = Runner();

  // The media spec names no address: the connector's default is used, as
  // for a media agent embedded in cairn-server.
  ASSERT_TRUE(runner->Submit(Backup(1, image, "pc1-full")));
  JobOutcome full = reporter_.WaitForResult(1);
  ASSERT_TRUE(full.ok) << full.error;
  EXPECT_EQ(full.backup_id, "pc1-full");
  EXPECT_EQ(full.image_size, data.size());
  EXPECT_GT(full.chunks_new, 0u);
  EXPECT_GT(full.new_stored_bytes, 0u);
  EXPECT_TRUE(*repo_->manifests().Exists("pc1-full"));
  auto m = repo_->LoadManifest("pc1-full", nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->encrypted());
  EXPECT_EQ(m->source, "pc1");

  // Change 10 bytes; the incremental sends only the changed chunk.
  data.replace(100, 10, "0123456789");
  testing::WriteFileOrDie(image, data);
  ASSERT_TRUE(runner->Submit(Backup(2, image, "pc1-incr", "pc1-full")));
  JobOutcome incr = reporter_.WaitForResult(2);
  ASSERT_TRUE(incr.ok) << incr.error;
  EXPECT_EQ(incr.chunks_new, 1u);
  EXPECT_GT(incr.chunks_deduplicated, 0u);
  EXPECT_EQ(repo_->LoadManifest("pc1-incr", nullptr)->parent_id, "pc1-full");

  std::string target = dir_.Sub("restored");
  ASSERT_TRUE(runner->Submit(Restore(3, "pc1-incr", target)));
  JobOutcome restored = reporter_.WaitForResult(3);
  ASSERT_TRUE(restored.ok) << restored.error;
  EXPECT_EQ(restored.image_size, data.size());
  EXPECT_EQ(testing::ReadFileOrDie(target), data);

  runner->Stop();
  EXPECT_FALSE(reporter_.progress_after_result());
  for (uint64_t id : {1, 2, 3}) EXPECT_EQ(reporter_.ResultCount(id), 1);
}

TEST_F(AgentJobRunnerTest, CancelMidBackupLeavesNoManifest) {
  std::string image = dir_.Sub("image");
  testing::WriteFileOrDie(image, testing::PseudoRandomBytes(4 << 20, 3));
  JobRunner* runner = Runner(/*threads=*/1);
  // The first chunk that reaches the media agent triggers the cancel, as a
  // CancelCommand arriving mid-backup would.
  std::once_flag once;
  hooked_->on_put = [&] {
    std::call_once(once, [&] { EXPECT_TRUE(runner->Cancel(7)); });
  };
  ASSERT_TRUE(runner->Submit(Backup(7, image, "pc1-cancelled")));
  JobOutcome out = reporter_.WaitForResult(7);
  EXPECT_FALSE(out.ok);
  EXPECT_TRUE(out.cancelled);
  EXPECT_EQ(out.error, "job cancelled");
  EXPECT_FALSE(*repo_->manifests().Exists("pc1-cancelled"));
  EXPECT_TRUE(repo_->manifests().List()->empty());
}

TEST_F(AgentJobRunnerTest, BadTicketFailsWithTheMediaAgentsMessage) {
  std::string image = dir_.Sub("image");
  testing::WriteFileOrDie(image, testing::TextLikeBytes(1 << 20, 4));
  JobRunner* runner = Runner();

  // A ticket for another client.
  BackupJob other = Backup(11, image, "pc2-b");
  other.media.ticket =
      Ticket(SessionTicket::Operation::kBackup, "pc2", "pc2-b", 11);
  ASSERT_TRUE(runner->Submit(other));
  JobOutcome out = reporter_.WaitForResult(11);
  EXPECT_FALSE(out.ok);
  EXPECT_FALSE(out.cancelled);
  EXPECT_NE(out.error.find("ticket belongs to client 'pc2', not to 'pc1'"),
            std::string::npos)
      << out.error;

  // A ticket signed by someone other than the server.
  BackupJob forged = Backup(12, image, "pc1-forged");
  forged.media.ticket =
      Ticket(SessionTicket::Operation::kBackup, "pc1", "pc1-forged", 12, "",
             testing::MakeSelfSignedEcCert("mallory").key_pem);
  ASSERT_TRUE(runner->Submit(forged));
  out = reporter_.WaitForResult(12);
  EXPECT_FALSE(out.ok);
  EXPECT_NE(out.error.find("signature does not verify"), std::string::npos)
      << out.error;
  EXPECT_TRUE(repo_->manifests().List()->empty());
}

TEST_F(AgentJobRunnerTest, QueuedJobsCanBeCancelledAndDuplicatesAreIgnored) {
  std::string image = dir_.Sub("image");
  testing::WriteFileOrDie(image, testing::PseudoRandomBytes(1 << 20, 5));
  JobRunner* runner = Runner(/*threads=*/1);
  // Hold job 21 inside its first PutChunk until released.
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, released = false;
  hooked_->on_put = [&] {
    std::unique_lock<std::mutex> lock(mu);
    if (entered) return;
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return released; });
  };
  ASSERT_TRUE(runner->Submit(Backup(21, image, "pc1-first")));
  ASSERT_TRUE(runner->Submit(Backup(22, image, "pc1-second")));
  EXPECT_FALSE(runner->Submit(Backup(22, image, "pc1-second")));
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  EXPECT_EQ(runner->ActiveJobIds(), (std::vector<uint64_t>{21, 22}));
  EXPECT_FALSE(runner->Submit(Backup(21, image, "pc1-first")));
  EXPECT_TRUE(runner->Cancel(22));
  JobOutcome second = reporter_.WaitForResult(22);
  EXPECT_TRUE(second.cancelled);
  EXPECT_FALSE(runner->Cancel(99));
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
  JobOutcome first = reporter_.WaitForResult(21);
  EXPECT_TRUE(first.ok) << first.error;
  EXPECT_TRUE(runner->WaitIdle(std::chrono::seconds(10)));
  EXPECT_TRUE(*repo_->manifests().Exists("pc1-first"));
  EXPECT_FALSE(*repo_->manifests().Exists("pc1-second"));
  EXPECT_EQ(reporter_.ResultCount(22), 1);
}

// The daemon's SIGTERM path: StopAccepting cancels the running and queued
// jobs and refuses every later Submit, so nothing starts after the cancel.
TEST_F(AgentJobRunnerTest, StopAcceptingCancelsAndRefusesNewJobs) {
  std::string image = dir_.Sub("image");
  testing::WriteFileOrDie(image, testing::PseudoRandomBytes(1 << 20, 6));
  JobRunner* runner = Runner(/*threads=*/1);
  // Hold job 31 inside its first PutChunk until released.
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, released = false;
  hooked_->on_put = [&] {
    std::unique_lock<std::mutex> lock(mu);
    if (entered) return;
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return released; });
  };
  ASSERT_TRUE(runner->Submit(Backup(31, image, "pc1-running")));
  ASSERT_TRUE(runner->Submit(Backup(32, image, "pc1-queued")));
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  runner->StopAccepting();
  // The queued job is reported cancelled at once; new jobs are refused.
  EXPECT_TRUE(reporter_.WaitForResult(32).cancelled);
  EXPECT_FALSE(runner->Submit(Backup(33, image, "pc1-late")));
  EXPECT_EQ(runner->ActiveJobIds(), (std::vector<uint64_t>{31}));
  runner->StopAccepting();  // idempotent
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
  // The running job stops at its next call into the media agent.
  JobOutcome running = reporter_.WaitForResult(31);
  EXPECT_FALSE(running.ok);
  EXPECT_TRUE(running.cancelled);
  EXPECT_TRUE(runner->WaitIdle(std::chrono::seconds(10)));
  EXPECT_FALSE(runner->Submit(Backup(34, image, "pc1-later")));
  runner->Stop();
  EXPECT_EQ(reporter_.ResultCount(31), 1);
  EXPECT_EQ(reporter_.ResultCount(32), 1);
  EXPECT_EQ(reporter_.ResultCount(33), 0);
  EXPECT_EQ(reporter_.ResultCount(34), 0);
  EXPECT_TRUE(repo_->manifests().List()->empty());
}

}  // namespace
}  // namespace cairn
