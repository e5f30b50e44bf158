// Tests of the storage manager's catalog (server/catalog.h) on a real RocksDB
// in a scratch directory.
#include "server/catalog.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/coding.h"
#include "common/crypto.h"
#include "common/strings.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

using ::cairn::testing::ScratchDir;

constexpr int64_t kStart = 1'700'000'000'000'000;  // 2023-11-14, in us
constexpr int64_t kHour = 3'600'000'000;

std::string Msg(const Status& s) { return std::string(ToStd(s.message())); }

std::string BigEndian(uint64_t v) {
  std::string out;
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  CatalogOptions Options() {
    CatalogOptions options;
    options.clock = [this] { return now_.load(); };
    return options;
  }

  void Reopen() {
    if (catalog_ != nullptr) {
      ASSERT_TRUE(catalog_->Close().ok());
    }
    catalog_.reset();
    auto opened = Catalog::Open(dir(), Options());
    ASSERT_TRUE(opened.ok()) << opened.status();
    catalog_ = std::move(opened).value();
  }

  void CloseCatalog() {
    ASSERT_TRUE(catalog_->Close().ok());
    catalog_.reset();
  }

  // Opens the database underneath with RocksDB directly.
  // REQUIRES: the catalog is closed.
  std::unique_ptr<rocksdb::DB> OpenRaw() {
    rocksdb::Options options;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(options, dir(), &raw);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::unique_ptr<rocksdb::DB>(raw);
  }

  // Every key and value in the database, read with a read-only RocksDB
  // handle (which replays the synced WAL, so the catalog may stay open).
  std::vector<std::pair<std::string, std::string>> RawDump() {
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s =
        rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir(), &raw);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return {};
    std::unique_ptr<rocksdb::DB> db(raw);
    std::vector<std::pair<std::string, std::string>> out;
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      out.emplace_back(it->key().ToString(), it->value().ToString());
    }
    EXPECT_TRUE(it->status().ok());
    return out;
  }

  void PutRaw(const std::string& key, const std::string& value) {
    auto db = OpenRaw();
    rocksdb::WriteOptions wo;
    wo.sync = true;
    ASSERT_TRUE(db->Put(wo, key, value).ok());
  }

  std::string dir() const { return scratch_.Sub("catalog"); }

  Client MakeClient(const std::string& id) {
    Client c;
    c.client_id = id;
    c.display_name = id + ".example.com";
    c.fleet = "laptops";
    c.cert_fingerprint = std::string(64, 'a');
    return c;
  }

  void AddClient(const std::string& id) {
    ASSERT_TRUE(catalog_->CreateClient(MakeClient(id)).ok());
  }

  MediaAgent MakeMediaAgent(const std::string& id) {
    MediaAgent m;
    m.media_agent_id = id;
    m.address = id + ":7443";
    m.capacity_bytes = 1ull << 40;
    m.used_bytes = 1ull << 30;
    return m;
  }

  // Queues, starts and returns a backup job for `client_id`.
  uint64_t RunningBackupJob(const std::string& client_id) {
    Job spec;
    spec.kind = JobKind::kBackup;
    spec.client_id = client_id;
    spec.requested_by = "scheduler";
    auto job = catalog_->CreateJob(spec);
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return 0;
    EXPECT_TRUE(catalog_->StartJob(job->job_id).ok());
    return job->job_id;
  }

  BackupEntry MakeBackup(const std::string& id, const std::string& client_id,
                         int64_t created_us, const std::string& parent = "") {
    BackupEntry b;
    b.backup_id = id;
    b.client_id = client_id;
    b.media_agent_id = "ma1";
    b.kind = parent.empty() ? BackupKind::kFull : BackupKind::kIncremental;
    b.parent_id = parent;
    b.manifest_ref = id;
    b.created_us = created_us;
    b.image_size = 1 << 30;
    b.stored_bytes = 1 << 20;
    b.chunk_count = 256;
    b.profile_ref = "profile-" + client_id;
    return b;
  }

  AuditEntry MakeAudit(const std::string& action, const std::string& target) {
    AuditEntry a;
    a.actor = "alice";
    a.role = Role::kAdmin;
    a.action = action;
    a.target = target;
    a.result = "ok";
    return a;
  }

  size_t AuditCount() {
    auto entries = catalog_->ListAudit(0, 0);
    EXPECT_TRUE(entries.ok()) << entries.status();
    return entries.ok() ? entries->size() : 0;
  }

  ScratchDir scratch_;
  std::atomic<int64_t> now_{kStart};
  std::unique_ptr<Catalog> catalog_;
};

// ---- Clients ---------------------------------------------------------------

TEST_F(CatalogTest, EmptyCatalogHasNothing) {
  auto clients = catalog_->ListClients();
  ASSERT_TRUE(clients.ok());
  EXPECT_TRUE(clients->empty());
  auto jobs = catalog_->ListJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_TRUE(jobs->empty());
  EXPECT_EQ(AuditCount(), 0u);
}

TEST_F(CatalogTest, ClientCreateGetList) {
  AddClient("pc-2");
  AddClient("pc-1");
  auto got = catalog_->GetClient("pc-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->client_id, "pc-1");
  EXPECT_EQ(got->display_name, "pc-1.example.com");
  EXPECT_EQ(got->fleet, "laptops");
  EXPECT_EQ(got->cert_fingerprint, std::string(64, 'a'));
  EXPECT_EQ(got->enrolled_us, kStart);
  EXPECT_FALSE(got->revoked);

  auto all = catalog_->ListClients();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].client_id, "pc-1");
  EXPECT_EQ((*all)[1].client_id, "pc-2");

  Status dup = catalog_->CreateClient(MakeClient("pc-1"));
  EXPECT_TRUE(absl::IsAlreadyExists(dup)) << dup;

  now_ += kHour;
  ASSERT_TRUE(catalog_->TouchClient("pc-1").ok());
  EXPECT_EQ(catalog_->GetClient("pc-1")->last_seen_us, kStart + kHour);
}

TEST_F(CatalogTest, InvalidIdsAreRejected) {
  for (const char* bad : {"", ".hidden", "a/b", "a b", "x\xff"}) {
    Status s = catalog_->CreateClient(MakeClient(bad));
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad << ": " << s;
    EXPECT_TRUE(absl::IsInvalidArgument(catalog_->GetClient(bad).status()));
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->CreateClient(MakeClient(std::string(129, 'a')))));
  EXPECT_TRUE(catalog_->CreateClient(MakeClient(std::string(128, 'a'))).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->GetBackup("../x").status()));
  auto clients = catalog_->ListClients();
  ASSERT_TRUE(clients.ok());
  EXPECT_EQ(clients->size(), 1u);
}

TEST_F(CatalogTest, UnknownIdsAreNotFoundNamingTheId) {
  Status s = catalog_->GetClient("ghost").status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(Msg(s).find("ghost"), std::string::npos) << s;

  s = catalog_->GetBackup("bk-ghost").status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(Msg(s).find("bk-ghost"), std::string::npos) << s;

  s = catalog_->GetJob(77).status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(Msg(s).find("77"), std::string::npos) << s;

  s = catalog_->GetMediaAgent("ma-ghost").status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(Msg(s).find("ma-ghost"), std::string::npos) << s;

  s = catalog_->GetUser("bob").status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(Msg(s).find("bob"), std::string::npos) << s;

  EXPECT_TRUE(absl::IsNotFound(catalog_->RevokeClient("ghost", "x")));
  EXPECT_TRUE(absl::IsNotFound(catalog_->TouchClient("ghost")));
  EXPECT_TRUE(absl::IsNotFound(catalog_->ListBackups("ghost").status()));
  EXPECT_TRUE(absl::IsNotFound(catalog_->LatestBackup("ghost").status()));
  EXPECT_TRUE(absl::IsNotFound(catalog_->StartJob(77)));
  EXPECT_TRUE(absl::IsNotFound(catalog_->UpdateJobProgress(77, {})));
  EXPECT_TRUE(
      absl::IsNotFound(catalog_->FinishJob(77, JobState::kCancelled, "")));
  EXPECT_TRUE(absl::IsNotFound(catalog_->DeleteUser("bob")));
  EXPECT_TRUE(absl::IsNotFound(
      catalog_->SetBackupStatus("bk-ghost", BackupStatus::kDamaged)));
}

TEST_F(CatalogTest, RevokeClient) {
  AddClient("pc-1");
  now_ += kHour;
  AuditEntry audit = MakeAudit("client.revoke", "client/pc-1");
  ASSERT_TRUE(catalog_->RevokeClient("pc-1", "stolen laptop", &audit).ok());
  auto c = catalog_->GetClient("pc-1");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->revoked);
  EXPECT_EQ(c->revoked_us, kStart + kHour);
  EXPECT_EQ(c->revoked_reason, "stolen laptop");

  auto log = catalog_->ListAudit(0, 0);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].action, "client.revoke");
  EXPECT_EQ((*log)[0].time_us, kStart + kHour);

  // Revoking twice is refused and writes nothing, not even the audit entry.
  Status again = catalog_->RevokeClient("pc-1", "again", &audit);
  EXPECT_TRUE(absl::IsFailedPrecondition(again)) << again;
  EXPECT_EQ(AuditCount(), 1u);
  EXPECT_EQ(catalog_->GetClient("pc-1")->revoked_reason, "stolen laptop");

  // A revoked client gets no new jobs and no new backups.
  Job spec;
  spec.client_id = "pc-1";
  EXPECT_TRUE(absl::IsFailedPrecondition(catalog_->CreateJob(spec).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(catalog_->CommitBackup(
      MakeBackup("bk1", "pc-1", kStart), Catalog::kNoJob)));
}

// ---- Media agents and users ------------------------------------------------

TEST_F(CatalogTest, MediaAgentPutGetListRevoke) {
  ASSERT_TRUE(catalog_->PutMediaAgent(MakeMediaAgent("ma2")).ok());
  ASSERT_TRUE(catalog_->PutMediaAgent(MakeMediaAgent("ma1")).ok());
  auto got = catalog_->GetMediaAgent("ma1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->address, "ma1:7443");
  EXPECT_EQ(got->capacity_bytes, 1ull << 40);
  EXPECT_EQ(got->registered_us, kStart);

  // Replacing keeps the registration time.
  now_ += kHour;
  MediaAgent updated = MakeMediaAgent("ma1");
  updated.used_bytes = 5;
  updated.last_seen_us = now_;
  ASSERT_TRUE(catalog_->PutMediaAgent(updated).ok());
  got = catalog_->GetMediaAgent("ma1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->used_bytes, 5u);
  EXPECT_EQ(got->registered_us, kStart);
  EXPECT_EQ(got->last_seen_us, kStart + kHour);

  auto all = catalog_->ListMediaAgents();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].media_agent_id, "ma1");
  EXPECT_EQ((*all)[1].media_agent_id, "ma2");

  ASSERT_TRUE(catalog_->RevokeMediaAgent("ma2", "decommissioned").ok());
  EXPECT_TRUE(catalog_->GetMediaAgent("ma2")->revoked);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      catalog_->PutMediaAgent(MakeMediaAgent("ma2"))));
  EXPECT_TRUE(
      absl::IsFailedPrecondition(catalog_->RevokeMediaAgent("ma2", "again")));
  AddClient("pc-1");
  Job spec;
  spec.client_id = "pc-1";
  spec.media_agent_id = "ma2";
  EXPECT_TRUE(absl::IsFailedPrecondition(catalog_->CreateJob(spec).status()));
}

TEST_F(CatalogTest, UserPutGetListDelete) {
  User alice{"alice@example.com", Role::kAdmin, "ff00", 0};
  User bob{"bob", Role::kHelpdesk, "", 0};
  ASSERT_TRUE(catalog_->PutUser(alice).ok());
  ASSERT_TRUE(catalog_->PutUser(bob).ok());
  auto got = catalog_->GetUser("alice@example.com");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->role, Role::kAdmin);
  EXPECT_EQ(got->cert_fingerprint, "ff00");
  EXPECT_EQ(got->created_us, kStart);

  now_ += kHour;
  bob.role = Role::kAuditor;
  ASSERT_TRUE(catalog_->PutUser(bob).ok());
  got = catalog_->GetUser("bob");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->role, Role::kAuditor);
  EXPECT_EQ(got->created_us, kStart);

  auto all = catalog_->ListUsers();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "alice@example.com");

  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->PutUser(User{"mallory", Role::kAgent, "", 0})));
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->PutUser(User{"bad/name", Role::kAdmin, "", 0})));

  ASSERT_TRUE(catalog_->DeleteUser("bob").ok());
  EXPECT_TRUE(absl::IsNotFound(catalog_->GetUser("bob").status()));
  EXPECT_EQ(catalog_->ListUsers()->size(), 1u);
}

// ---- Enrollment tokens -----------------------------------------------------

TEST_F(CatalogTest, TokenConsumeOnceThenRefused) {
  auto issued = catalog_->CreateToken(Role::kAgent, kHour, "alice");
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->record.token_hash,
            HexEncode(crypto::AsStringView(crypto::Sha256(issued->token))));
  EXPECT_EQ(issued->record.expires_us, kStart + kHour);
  EXPECT_FALSE(issued->record.used);

  now_ += kHour / 2;
  auto client = catalog_->ConsumeToken(issued->token, MakeClient("pc-1"));
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ(client->client_id, "pc-1");
  EXPECT_EQ(client->enrolled_us, kStart + kHour / 2);
  EXPECT_TRUE(catalog_->GetClient("pc-1").ok());

  auto tokens = catalog_->ListTokens();
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_TRUE((*tokens)[0].used);
  EXPECT_EQ((*tokens)[0].used_by, "pc-1");
  EXPECT_EQ((*tokens)[0].used_us, kStart + kHour / 2);

  // Reuse: refused, and it creates nothing.
  Status reuse =
      catalog_->ConsumeToken(issued->token, MakeClient("pc-2")).status();
  EXPECT_TRUE(absl::IsPermissionDenied(reuse)) << reuse;
  EXPECT_NE(Msg(reuse).find("already used"), std::string::npos) << reuse;
  EXPECT_TRUE(absl::IsNotFound(catalog_->GetClient("pc-2").status()));
}

TEST_F(CatalogTest, ExpiredTokenRefused) {
  auto issued = catalog_->CreateToken(Role::kAgent, kHour, "alice");
  ASSERT_TRUE(issued.ok());
  now_ += kHour;  // expiry is exclusive
  Status s = catalog_->ConsumeToken(issued->token, MakeClient("pc-1")).status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_NE(Msg(s).find("expired"), std::string::npos) << s;
  EXPECT_TRUE(absl::IsNotFound(catalog_->GetClient("pc-1").status()));
  EXPECT_FALSE((*catalog_->ListTokens())[0].used);
}

TEST_F(CatalogTest, UnknownOrWrongRoleTokenRefused) {
  Status s = catalog_->ConsumeToken("not-a-token", MakeClient("pc-1")).status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;

  auto media = catalog_->CreateToken(Role::kMedia, kHour, "alice");
  ASSERT_TRUE(media.ok());
  s = catalog_->ConsumeToken(media->token, MakeClient("pc-1")).status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_NE(Msg(s).find("media"), std::string::npos) << s;
  EXPECT_FALSE((*catalog_->ListTokens())[0].used);

  auto agent = catalog_->ConsumeMediaToken(media->token, MakeMediaAgent("ma1"));
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->registered_us, kStart);
  EXPECT_TRUE(catalog_->GetMediaAgent("ma1").ok());
  EXPECT_TRUE(absl::IsPermissionDenied(
      catalog_->ConsumeMediaToken(media->token, MakeMediaAgent("ma2"))
          .status()));

  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->CreateToken(Role::kAdmin, kHour, "alice").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->CreateToken(Role::kAgent, 0, "alice").status()));
}

TEST_F(CatalogTest, FailedConsumeLeavesTokenUnused) {
  AddClient("pc-1");
  auto issued = catalog_->CreateToken(Role::kAgent, kHour, "alice");
  ASSERT_TRUE(issued.ok());

  // The client id is taken: the token must stay usable.
  Status s = catalog_->ConsumeToken(issued->token, MakeClient("pc-1")).status();
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  // A malformed client id: same.
  s = catalog_->ConsumeToken(issued->token, MakeClient("bad id")).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  // A malformed audit entry (no action) fails the whole enrollment.
  AuditEntry bad_audit = MakeAudit("", "client/pc-2");
  s = catalog_->ConsumeToken(issued->token, MakeClient("pc-2"), &bad_audit)
          .status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::IsNotFound(catalog_->GetClient("pc-2").status()));
  EXPECT_FALSE((*catalog_->ListTokens())[0].used);
  EXPECT_EQ(AuditCount(), 0u);

  AuditEntry audit = MakeAudit("client.enroll", "client/pc-2");
  EXPECT_TRUE(
      catalog_->ConsumeToken(issued->token, MakeClient("pc-2"), &audit).ok());
  EXPECT_EQ(AuditCount(), 1u);
}

TEST_F(CatalogTest, PlaintextTokenIsNeverStored) {
  auto issued = catalog_->CreateToken(Role::kAgent, kHour, "alice");
  ASSERT_TRUE(issued.ok());
  ASSERT_TRUE(catalog_->ConsumeToken(issued->token, MakeClient("pc-1")).ok());
  CloseCatalog();
  for (const auto& [key, value] : RawDump()) {
    EXPECT_EQ(key.find(issued->token), std::string::npos);
    EXPECT_EQ(value.find(issued->token), std::string::npos);
  }
}

// ---- Jobs ------------------------------------------------------------------

TEST_F(CatalogTest, BackupJobLifecycle) {
  AddClient("pc-1");
  ASSERT_TRUE(catalog_->PutMediaAgent(MakeMediaAgent("ma1")).ok());
  Job spec;
  spec.kind = JobKind::kBackup;
  spec.client_id = "pc-1";
  spec.incremental = true;
  spec.requested_by = "alice";
  auto job = catalog_->CreateJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->job_id, 1u);
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_EQ(job->created_us, kStart);

  now_ += 1000;
  ASSERT_TRUE(catalog_->StartJob(job->job_id, "ma1", "bk1").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(catalog_->StartJob(job->job_id)));
  ASSERT_TRUE(catalog_->UpdateJobProgress(job->job_id, {10, 100, 5}).ok());
  auto got = catalog_->GetJob(job->job_id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kRunning);
  EXPECT_EQ(got->backup_id, "bk1");  // the id its backup will have
  EXPECT_EQ(got->started_us, kStart + 1000);
  EXPECT_EQ(got->media_agent_id, "ma1");
  EXPECT_EQ(got->progress.done_bytes, 10u);
  EXPECT_EQ(got->progress.total_bytes, 100u);
  EXPECT_EQ(got->progress.bytes_per_second, 5u);
  EXPECT_TRUE(got->incremental);
  EXPECT_EQ(got->requested_by, "alice");

  // A backup job succeeds only through CommitBackup.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      catalog_->FinishJob(job->job_id, JobState::kSucceeded, "")));

  now_ += 1000;
  BackupEntry b = MakeBackup("bk1", "pc-1", kStart);
  b.media_agent_id.clear();
  ASSERT_TRUE(catalog_->CommitBackup(b, job->job_id).ok());
  got = catalog_->GetJob(job->job_id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kSucceeded);
  EXPECT_EQ(got->backup_id, "bk1");
  EXPECT_EQ(got->finished_us, kStart + 2000);
  EXPECT_EQ(got->progress.done_bytes, 100u);
  auto backup = catalog_->GetBackup("bk1");
  ASSERT_TRUE(backup.ok());
  EXPECT_EQ(backup->job_id, job->job_id);
  EXPECT_EQ(backup->media_agent_id, "ma1");  // taken from the job
  EXPECT_EQ(backup->committed_us, kStart + 2000);

  // Finishing a finished job is refused and writes nothing (audit included).
  AuditEntry audit = MakeAudit("job.cancel", "job/1");
  Status s = catalog_->FinishJob(job->job_id, JobState::kCancelled, "", &audit);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(Msg(s).find("already finished"), std::string::npos) << s;
  EXPECT_EQ(catalog_->GetJob(job->job_id)->state, JobState::kSucceeded);
  EXPECT_EQ(AuditCount(), 0u);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      catalog_->UpdateJobProgress(job->job_id, {1, 1, 1})));
}

TEST_F(CatalogTest, RestoreJobAndFinishRules) {
  AddClient("pc-1");
  AddClient("pc-2");
  ASSERT_TRUE(
      catalog_->CommitBackup(MakeBackup("bk1", "pc-1", kStart), Catalog::kNoJob)
          .ok());
  Job spec;
  spec.kind = JobKind::kRestore;
  spec.client_id = "pc-2";  // bare metal onto another machine
  spec.backup_id = "bk1";
  spec.target = "/dev/sdb";
  auto job = catalog_->CreateJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->target, "/dev/sdb");

  EXPECT_TRUE(absl::IsFailedPrecondition(
      catalog_->UpdateJobProgress(job->job_id, {1, 2, 3})));  // not running yet
  EXPECT_TRUE(absl::IsFailedPrecondition(
      catalog_->FinishJob(job->job_id, JobState::kSucceeded, "")));
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->FinishJob(job->job_id, JobState::kFailed, "")));
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->FinishJob(job->job_id, JobState::kRunning, "")));
  ASSERT_TRUE(catalog_->StartJob(job->job_id).ok());
  ASSERT_TRUE(catalog_->FinishJob(job->job_id, JobState::kSucceeded, "").ok());
  EXPECT_EQ(catalog_->GetJob(job->job_id)->state, JobState::kSucceeded);

  // Queued jobs may be cancelled or failed.
  auto queued = catalog_->CreateJob(spec);
  ASSERT_TRUE(queued.ok());
  ASSERT_TRUE(
      catalog_->FinishJob(queued->job_id, JobState::kFailed, "no media agent")
          .ok());
  auto failed = catalog_->GetJob(queued->job_id);
  EXPECT_EQ(failed->state, JobState::kFailed);
  EXPECT_EQ(failed->error, "no media agent");
  EXPECT_TRUE(absl::IsFailedPrecondition(catalog_->StartJob(queued->job_id)));

  // Restore of an unknown backup, backup job naming a backup, unknown client.
  spec.backup_id = "ghost";
  EXPECT_TRUE(absl::IsNotFound(catalog_->CreateJob(spec).status()));
  spec.backup_id.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->CreateJob(spec).status()));
  Job backup_spec;
  backup_spec.kind = JobKind::kBackup;
  backup_spec.client_id = "pc-1";
  backup_spec.backup_id = "bk9";
  EXPECT_TRUE(
      absl::IsInvalidArgument(catalog_->CreateJob(backup_spec).status()));
  backup_spec.backup_id.clear();
  backup_spec.client_id = "ghost";
  EXPECT_TRUE(absl::IsNotFound(catalog_->CreateJob(backup_spec).status()));
  backup_spec.client_id = "pc-1";
  backup_spec.media_agent_id = "ma-ghost";
  EXPECT_TRUE(absl::IsNotFound(catalog_->CreateJob(backup_spec).status()));
}

TEST_F(CatalogTest, ListJobsFilters) {
  AddClient("pc-1");
  AddClient("pc-2");
  for (int i = 0; i < 3; ++i) {
    for (const char* c : {"pc-1", "pc-2"}) {
      Job spec;
      spec.client_id = c;
      ASSERT_TRUE(catalog_->CreateJob(spec).ok());
    }
  }
  // Jobs 1..6; 1,3,5 are pc-1. Start 1 and 2, cancel 3.
  ASSERT_TRUE(catalog_->StartJob(1).ok());
  ASSERT_TRUE(catalog_->StartJob(2).ok());
  ASSERT_TRUE(catalog_->FinishJob(3, JobState::kCancelled, "").ok());

  auto ids = [](const StatusOr<std::vector<Job>>& jobs) {
    std::vector<uint64_t> out;
    EXPECT_TRUE(jobs.ok()) << jobs.status();
    if (jobs.ok()) {
      for (const Job& j : *jobs) out.push_back(j.job_id);
    }
    return out;
  };
  using V = std::vector<uint64_t>;
  EXPECT_EQ(ids(catalog_->ListJobs()), (V{1, 2, 3, 4, 5, 6}));
  JobFilter f;
  f.state = JobState::kQueued;
  EXPECT_EQ(ids(catalog_->ListJobs(f)), (V{4, 5, 6}));
  f.client_id = "pc-1";
  EXPECT_EQ(ids(catalog_->ListJobs(f)), (V{5}));
  f.state = JobState::kRunning;
  EXPECT_EQ(ids(catalog_->ListJobs(f)), (V{1}));
  f.state.reset();
  EXPECT_EQ(ids(catalog_->ListJobs(f)), (V{1, 3, 5}));
  f.after_job_id = 1;
  f.limit = 1;
  EXPECT_EQ(ids(catalog_->ListJobs(f)), (V{3}));
  JobFilter cancelled;
  cancelled.state = JobState::kCancelled;
  EXPECT_EQ(ids(catalog_->ListJobs(cancelled)), (V{3}));
  JobFilter paged;
  paged.limit = 2;
  paged.after_job_id = 2;
  EXPECT_EQ(ids(catalog_->ListJobs(paged)), (V{3, 4}));
}

TEST_F(CatalogTest, ConcurrentCreateJobGetsDistinctIds) {
  AddClient("pc-1");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::vector<uint64_t>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Job spec;
        spec.client_id = "pc-1";
        AuditEntry audit = MakeAudit("job.create", "");
        auto job = catalog_->CreateJob(spec, &audit);
        if (job.ok()) ids[t].push_back(job->job_id);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<uint64_t> all;
  for (const auto& v : ids) {
    EXPECT_EQ(v.size(), static_cast<size_t>(kPerThread));
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
    all.insert(v.begin(), v.end());
  }
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), static_cast<uint64_t>(kThreads * kPerThread));
  auto log = catalog_->ListAudit(0, 0);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), static_cast<size_t>(kThreads * kPerThread));
  // Each job's audit entry names it.
  std::set<std::string> targets;
  for (const AuditEntry& a : *log) targets.insert(a.target);
  EXPECT_EQ(targets.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_TRUE(targets.count("job/1"));
}

// ---- Backups ---------------------------------------------------------------

TEST_F(CatalogTest, BackupsChainsAndLatest) {
  AddClient("pc-1");
  AddClient("pc-10");  // a prefix neighbour: must never show up for pc-1
  ASSERT_TRUE(
      catalog_->CommitBackup(MakeBackup("full", "pc-1", kStart), 0).ok());
  ASSERT_TRUE(
      catalog_
          ->CommitBackup(MakeBackup("inc1", "pc-1", kStart + kHour, "full"),
                         RunningBackupJob("pc-1"))
          .ok());
  ASSERT_TRUE(catalog_
                  ->CommitBackup(
                      MakeBackup("inc2", "pc-1", kStart + 2 * kHour, "inc1"), 0)
                  .ok());
  ASSERT_TRUE(
      catalog_
          ->CommitBackup(MakeBackup("other", "pc-10", kStart + 5 * kHour), 0)
          .ok());

  auto got = catalog_->GetBackup("inc1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->kind, BackupKind::kIncremental);
  EXPECT_EQ(got->parent_id, "full");
  EXPECT_EQ(got->client_id, "pc-1");
  EXPECT_EQ(got->media_agent_id, "ma1");
  EXPECT_EQ(got->manifest_ref, "inc1");
  EXPECT_EQ(got->created_us, kStart + kHour);
  EXPECT_EQ(got->image_size, 1u << 30);
  EXPECT_EQ(got->stored_bytes, 1u << 20);
  EXPECT_EQ(got->chunk_count, 256u);
  EXPECT_EQ(got->profile_ref, "profile-pc-1");
  EXPECT_EQ(got->status, BackupStatus::kAvailable);
  EXPECT_EQ(got->job_id, 1u);

  auto list = catalog_->ListBackups("pc-1");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].backup_id, "inc2");
  EXPECT_EQ((*list)[1].backup_id, "inc1");
  EXPECT_EQ((*list)[2].backup_id, "full");
  EXPECT_EQ(catalog_->ListBackups("pc-10")->size(), 1u);

  auto chain = catalog_->BackupChain("inc2");
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_EQ(chain->size(), 3u);
  EXPECT_EQ((*chain)[0].backup_id, "full");
  EXPECT_EQ((*chain)[2].backup_id, "inc2");

  auto latest = catalog_->LatestBackup("pc-1");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->backup_id, "inc2");
  AuditEntry audit = MakeAudit("backup.mark-damaged", "backup/inc2");
  ASSERT_TRUE(
      catalog_->SetBackupStatus("inc2", BackupStatus::kDamaged, &audit).ok());
  EXPECT_EQ(catalog_->GetBackup("inc2")->status, BackupStatus::kDamaged);
  EXPECT_EQ(catalog_->LatestBackup("pc-1")->backup_id, "inc1");
  EXPECT_EQ(AuditCount(), 1u);

  AddClient("pc-3");
  EXPECT_TRUE(absl::IsNotFound(catalog_->LatestBackup("pc-3").status()));
  EXPECT_TRUE(catalog_->ListBackups("pc-3")->empty());
}

TEST_F(CatalogTest, CommitBackupValidates) {
  AddClient("pc-1");
  AddClient("pc-2");
  ASSERT_TRUE(
      catalog_->CommitBackup(MakeBackup("full", "pc-1", kStart), 0).ok());
  // Duplicate id.
  EXPECT_TRUE(absl::IsAlreadyExists(
      catalog_->CommitBackup(MakeBackup("full", "pc-1", kStart), 0)));
  // Incremental without a parent; full with a parent.
  BackupEntry b = MakeBackup("inc", "pc-1", kStart + 1);
  b.kind = BackupKind::kIncremental;
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->CommitBackup(b, 0)));
  b = MakeBackup("f2", "pc-1", kStart + 1);
  b.parent_id = "full";
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->CommitBackup(b, 0)));
  // Parent of another client, missing parent, parent newer than the child.
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->CommitBackup(MakeBackup("x", "pc-2", kStart + 1, "full"), 0)));
  Status s = catalog_->CommitBackup(MakeBackup("x", "pc-1", kStart, "nope"), 0);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(Msg(s).find("nope"), std::string::npos);
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->CommitBackup(MakeBackup("x", "pc-1", kStart - 1, "full"), 0)));
  // Bad ids, unknown client, unknown job.
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->CommitBackup(MakeBackup(".x", "pc-1", kStart), 0)));
  EXPECT_TRUE(absl::IsNotFound(
      catalog_->CommitBackup(MakeBackup("x", "ghost", kStart), 0)));
  EXPECT_TRUE(absl::IsNotFound(
      catalog_->CommitBackup(MakeBackup("x", "pc-1", kStart), 99)));
  EXPECT_TRUE(absl::IsNotFound(catalog_->GetBackup("x").status()));
  EXPECT_EQ(catalog_->ListBackups("pc-1")->size(), 1u);
  EXPECT_TRUE(catalog_->ListBackups("pc-2")->empty());
}

// ---- Atomicity -------------------------------------------------------------

TEST_F(CatalogTest, FailedCommitBackupWritesNothing) {
  AddClient("pc-1");
  AddClient("pc-2");
  Job spec;
  spec.client_id = "pc-1";
  auto queued = catalog_->CreateJob(spec);
  ASSERT_TRUE(queued.ok());
  uint64_t other_client_job = RunningBackupJob("pc-2");
  auto before = RawDump();
  ASSERT_FALSE(before.empty());

  // The backup record is fine; the job it would complete is not running.
  Status s =
      catalog_->CommitBackup(MakeBackup("bk1", "pc-1", kStart), queued->job_id);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  // ... or belongs to another client.
  s = catalog_->CommitBackup(MakeBackup("bk1", "pc-1", kStart),
                             other_client_job);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(absl::IsNotFound(catalog_->GetBackup("bk1").status()));
  EXPECT_EQ(catalog_->GetJob(queued->job_id)->state, JobState::kQueued);
  EXPECT_EQ(catalog_->GetJob(other_client_job)->state, JobState::kRunning);

  // Byte for byte, the database is as it was.
  EXPECT_EQ(RawDump(), before);
}

TEST_F(CatalogTest, InvalidAuditEntryAbortsTheMutation) {
  AddClient("pc-1");
  AuditEntry no_actor = MakeAudit("client.revoke", "client/pc-1");
  no_actor.actor.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->RevokeClient("pc-1", "lost", &no_actor)));
  EXPECT_FALSE(catalog_->GetClient("pc-1")->revoked);

  Job spec;
  spec.client_id = "pc-1";
  AuditEntry no_action = MakeAudit("", "");
  EXPECT_TRUE(
      absl::IsInvalidArgument(catalog_->CreateJob(spec, &no_action).status()));
  EXPECT_TRUE(catalog_->ListJobs()->empty());
  EXPECT_EQ(AuditCount(), 0u);
  // The job id that was not used is not burnt.
  auto job = catalog_->CreateJob(spec);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->job_id, 1u);
}

// ---- Restart ---------------------------------------------------------------

TEST_F(CatalogTest, RestartKeepsEverything) {
  AddClient("pc-1");
  ASSERT_TRUE(catalog_->PutMediaAgent(MakeMediaAgent("ma1")).ok());
  ASSERT_TRUE(catalog_->PutUser(User{"alice", Role::kAdmin, "ab", 0}).ok());
  auto token = catalog_->CreateToken(Role::kAgent, kHour, "alice");
  ASSERT_TRUE(token.ok());
  uint64_t job = RunningBackupJob("pc-1");
  ASSERT_TRUE(
      catalog_->CommitBackup(MakeBackup("bk1", "pc-1", kStart), job).ok());
  Job queued_spec;
  queued_spec.kind = JobKind::kRestore;
  queued_spec.client_id = "pc-1";
  queued_spec.backup_id = "bk1";
  auto queued = catalog_->CreateJob(queued_spec);
  ASSERT_TRUE(queued.ok());
  ASSERT_TRUE(catalog_->AppendAudit(MakeAudit("user.add", "user/alice")).ok());

  Reopen();

  EXPECT_EQ(catalog_->GetClient("pc-1")->display_name, "pc-1.example.com");
  EXPECT_EQ(catalog_->GetMediaAgent("ma1")->address, "ma1:7443");
  EXPECT_EQ(catalog_->GetUser("alice")->cert_fingerprint, "ab");
  auto tokens = catalog_->ListTokens();
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_EQ((*tokens)[0].token_hash, token->record.token_hash);
  EXPECT_EQ(catalog_->GetBackup("bk1")->job_id, job);
  EXPECT_EQ(catalog_->GetJob(job)->state, JobState::kSucceeded);
  EXPECT_EQ(catalog_->GetJob(queued->job_id)->state, JobState::kQueued);
  auto log = catalog_->ListAudit(0, 0);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].action, "user.add");
  // The token still enrolls after a restart.
  EXPECT_TRUE(catalog_->ConsumeToken(token->token, MakeClient("pc-2")).ok());
}

TEST_F(CatalogTest, RunningJobFailsOnRestartQueuedStays) {
  AddClient("pc-1");
  Job spec;
  spec.client_id = "pc-1";
  auto queued = catalog_->CreateJob(spec);
  ASSERT_TRUE(queued.ok());
  uint64_t running = RunningBackupJob("pc-1");
  ASSERT_TRUE(catalog_->UpdateJobProgress(running, {50, 100, 10}).ok());
  uint64_t done = RunningBackupJob("pc-1");
  ASSERT_TRUE(
      catalog_->CommitBackup(MakeBackup("bk1", "pc-1", kStart), done).ok());

  now_ += kHour;
  Reopen();

  auto failed = catalog_->GetJob(running);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state, JobState::kFailed);
  EXPECT_EQ(failed->error, Catalog::kServerStoppedError);
  EXPECT_EQ(failed->finished_us, kStart + kHour);
  EXPECT_EQ(failed->progress.done_bytes, 50u);
  EXPECT_EQ(catalog_->GetJob(queued->job_id)->state, JobState::kQueued);
  EXPECT_EQ(catalog_->GetJob(done)->state, JobState::kSucceeded);

  JobFilter f;
  f.state = JobState::kRunning;
  EXPECT_TRUE(catalog_->ListJobs(f)->empty());
  f.state = JobState::kFailed;
  ASSERT_EQ(catalog_->ListJobs(f)->size(), 1u);

  auto log = catalog_->ListAudit(0, 0);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].action, "job.fail");
  EXPECT_EQ((*log)[0].target, StrCat("job/", running));
  EXPECT_EQ((*log)[0].role, Role::kSystem);

  // A second restart changes nothing more.
  Reopen();
  EXPECT_EQ(AuditCount(), 1u);
  EXPECT_EQ(catalog_->GetJob(running)->finished_us, kStart + kHour);
}

TEST_F(CatalogTest, JobIdsAndAuditSeqsMonotonicAcrossRestarts) {
  AddClient("pc-1");
  Job spec;
  spec.client_id = "pc-1";
  for (uint64_t want = 1; want <= 3; ++want) {
    auto job = catalog_->CreateJob(spec);
    ASSERT_TRUE(job.ok());
    EXPECT_EQ(job->job_id, want);
    auto entry = catalog_->AppendAudit(MakeAudit("x", "y"));
    ASSERT_TRUE(entry.ok());
    EXPECT_EQ(entry->seq, want);
    EXPECT_EQ(entry->time_us, kStart);
  }
  Reopen();
  auto job = catalog_->CreateJob(spec);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->job_id, 4u);
  AuditEntry timed = MakeAudit("x", "y");
  timed.time_us = 42;
  auto entry = catalog_->AppendAudit(timed);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->seq, 4u);
  EXPECT_EQ(entry->time_us, 42);

  // Paging through the log.
  auto page = catalog_->ListAudit(1, 2);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].seq, 2u);
  EXPECT_EQ((*page)[1].seq, 3u);
  EXPECT_TRUE(catalog_->ListAudit(4, 0)->empty());
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->AppendAudit(MakeAudit("", "y")).status()));
}

TEST_F(CatalogTest, ProcessDeathKeepsEveryAcknowledgedChange) {
  // Copy the database directory while the catalog is open and nothing has
  // been flushed: the copy is what a killed server leaves behind (the WAL,
  // synced on every state change, holds all of it).
  AddClient("pc-1");
  uint64_t running = RunningBackupJob("pc-1");
  uint64_t done = RunningBackupJob("pc-1");
  ASSERT_TRUE(
      catalog_->CommitBackup(MakeBackup("bk1", "pc-1", kStart), done).ok());
  ASSERT_TRUE(catalog_->AppendAudit(MakeAudit("x", "y")).ok());
  std::string crashed = scratch_.Sub("crashed");
  std::filesystem::copy(dir(), crashed,
                        std::filesystem::copy_options::recursive);
  std::filesystem::remove(crashed + "/LOCK");

  auto reopened = Catalog::Open(crashed, Options());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  Catalog& c = **reopened;
  EXPECT_TRUE(c.GetClient("pc-1").ok());
  EXPECT_EQ(c.GetBackup("bk1")->job_id, done);
  EXPECT_EQ(c.GetJob(done)->state, JobState::kSucceeded);
  EXPECT_EQ(c.GetJob(running)->state, JobState::kFailed);
  EXPECT_EQ(c.GetJob(running)->error, Catalog::kServerStoppedError);
  Job spec;
  spec.client_id = "pc-1";
  auto job = c.CreateJob(spec);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->job_id, 3u);
  auto log = c.ListAudit(0, 0);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);  // "x", then the restart's job.fail
  EXPECT_EQ((*log)[1].action, "job.fail");
}

// ---- Damage and misuse -----------------------------------------------------

TEST_F(CatalogTest, CorruptedValueIsDataLossNamingTheKey) {
  AddClient("pc-1");
  AddClient("pc-2");
  Job spec;
  spec.client_id = "pc-1";
  ASSERT_TRUE(catalog_->CreateJob(spec).ok());
  CloseCatalog();
  PutRaw("c/pc-1", "\xff\xff\xff garbage");
  PutRaw(std::string("j/") + BigEndian(1), "\x0a\x05hello");  // parses, wrong
  Reopen();

  Status s = catalog_->GetClient("pc-1").status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(Msg(s).find("c/pc-1"), std::string::npos) << s;
  s = catalog_->ListClients().status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(catalog_->GetClient("pc-2").ok());

  s = catalog_->GetJob(1).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(Msg(s).find("j/1"), std::string::npos) << s;
  EXPECT_TRUE(absl::IsDataLoss(catalog_->StartJob(1)));
  EXPECT_TRUE(absl::IsDataLoss(catalog_->ListJobs().status()));
  // Mutations on the damaged record refuse and write nothing.
  EXPECT_TRUE(absl::IsDataLoss(catalog_->RevokeClient("pc-1", "x")));
  EXPECT_TRUE(absl::IsDataLoss(catalog_->CreateJob(spec).status()));
}

TEST_F(CatalogTest, DamagedRunningJobDoesNotBlockRestart) {
  AddClient("pc-1");
  uint64_t damaged = RunningBackupJob("pc-1");
  uint64_t healthy = RunningBackupJob("pc-1");
  CloseCatalog();
  PutRaw(std::string("j/") + BigEndian(damaged), "\xff\xff");
  Reopen();
  Status s = catalog_->GetJob(damaged).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(Msg(s).find(StrCat("j/", damaged)), std::string::npos) << s;
  EXPECT_EQ(catalog_->GetJob(healthy)->state, JobState::kFailed);
}

TEST_F(CatalogTest, DanglingIndexEntryIsDataLoss) {
  AddClient("pc-1");
  ASSERT_TRUE(
      catalog_->CommitBackup(MakeBackup("bk1", "pc-1", kStart), 0).ok());
  CloseCatalog();
  {
    auto db = OpenRaw();
    rocksdb::WriteOptions wo;
    wo.sync = true;
    ASSERT_TRUE(db->Delete(wo, "B/bk1").ok());
  }
  Reopen();
  Status s = catalog_->ListBackups("pc-1").status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(Msg(s).find("B/bk1"), std::string::npos) << s;
  EXPECT_NE(Msg(s).find("b/pc-1/"), std::string::npos) << s;
}

TEST_F(CatalogTest, ValidRecordUnderTheWrongKeyIsDataLoss) {
  AddClient("pc-1");
  CloseCatalog();
  std::string pc1_value;
  {
    auto db = OpenRaw();
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "c/pc-1", &pc1_value).ok());
  }
  PutRaw("c/pc-9", pc1_value);
  Reopen();
  Status s = catalog_->GetClient("pc-9").status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(Msg(s).find("c/pc-9"), std::string::npos) << s;
}

TEST_F(CatalogTest, SecondOpenIsRefused) {
  auto second = Catalog::Open(dir(), Options());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
}

TEST_F(CatalogTest, NewerSchemaIsRefused) {
  CloseCatalog();
  PutRaw("M/schema", std::string("\x08\x02", 2));  // schema_version = 2
  auto opened = Catalog::Open(dir(), Options());
  EXPECT_TRUE(absl::IsFailedPrecondition(opened.status())) << opened.status();
  EXPECT_NE(Msg(opened.status()).find("newer"), std::string::npos);
}

TEST_F(CatalogTest, ForeignDatabaseIsRefused) {
  ScratchDir other;
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, other.path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "hello", "world").ok());
  }
  auto opened = Catalog::Open(other.path(), Options());
  EXPECT_TRUE(absl::IsDataLoss(opened.status())) << opened.status();
}

TEST_F(CatalogTest, ClosedCatalogRefusesCalls) {
  ASSERT_TRUE(catalog_->Close().ok());
  EXPECT_TRUE(catalog_->Close().ok());  // idempotent
  EXPECT_TRUE(absl::IsFailedPrecondition(catalog_->GetClient("pc-1").status()));
  EXPECT_TRUE(
      absl::IsFailedPrecondition(catalog_->CreateClient(MakeClient("pc-1"))));
  EXPECT_TRUE(absl::IsFailedPrecondition(catalog_->ListAudit(0, 0).status()));
  catalog_.reset();
}

// ---- Key encoding (docs/formats/catalog.md) --------------------------------

TEST_F(CatalogTest, KeysMatchTheDocumentedEncoding) {
  AddClient("pc-17");
  ASSERT_TRUE(catalog_->PutMediaAgent(MakeMediaAgent("ma1")).ok());
  ASSERT_TRUE(catalog_->PutUser(User{"alice", Role::kAdmin, "", 0}).ok());
  auto token = catalog_->CreateToken(Role::kAgent, kHour, "alice");
  ASSERT_TRUE(token.ok());
  uint64_t job = RunningBackupJob("pc-17");
  ASSERT_TRUE(
      catalog_->CommitBackup(MakeBackup("bk-1", "pc-17", 1700000000000000), job)
          .ok());
  ASSERT_TRUE(catalog_->AppendAudit(MakeAudit("a", "b")).ok());
  CloseCatalog();

  std::set<std::string> keys;
  for (const auto& [key, value] : RawDump()) keys.insert(key);
  std::set<std::string> want = {
      "M/schema",
      "M/next_job_id",
      "M/next_audit_seq",
      "c/pc-17",
      "m/ma1",
      "u/alice",
      "t/" + token->record.token_hash,
      "B/bk-1",
      // created 1700000000000000 us = 0x00060A24181E4000
      std::string("b/pc-17/\x00\x06\x0a\x24\x18\x1e\x40\x00/bk-1", 21),
      std::string("j/\x00\x00\x00\x00\x00\x00\x00\x01", 10),
      std::string("s/\x03/\x00\x00\x00\x00\x00\x00\x00\x01", 12),
      std::string("a/\x00\x00\x00\x00\x00\x00\x00\x01", 10),
  };
  EXPECT_EQ(keys, want);
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

ProfileBlob Blob(char fill) {
  ProfileBlob b;
  b.sha256_hex = std::string(64, fill);
  b.profile_zstd = std::string("zstd-") + fill;
  b.raw_size = 100;
  return b;
}

// A client's profile history: an entry only when the profile changes; each
// distinct profile stored once, shared between clients.
TEST_F(CatalogTest, ProfilesAreContentAddressedWithAPerClientHistory) {
  AddClient("pc-1");
  AddClient("pc-2");
  EXPECT_TRUE(*catalog_->RecordClientProfile("pc-1", Blob('a'), kStart));
  EXPECT_FALSE(*catalog_->RecordClientProfile("pc-1", Blob('a'), kStart + 1));
  EXPECT_TRUE(*catalog_->RecordClientProfile("pc-1", Blob('b'), kStart + 2));
  EXPECT_TRUE(*catalog_->RecordClientProfile("pc-1", Blob('a'), kStart + 3));
  EXPECT_TRUE(*catalog_->RecordClientProfile("pc-2", Blob('a'), kStart + 4));
  auto history = catalog_->ListClientProfiles("pc-1");
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[0].profile_sha256, std::string(64, 'a'));
  EXPECT_EQ((*history)[1].profile_sha256, std::string(64, 'b'));
  EXPECT_EQ((*history)[2].profile_sha256, std::string(64, 'a'));
  EXPECT_EQ((*history)[2].reported_us, kStart + 3);
  auto blob = catalog_->GetProfileBlob(std::string(64, 'a'));
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->profile_zstd, "zstd-a");
  EXPECT_EQ(blob->first_seen_us, kStart);
  EXPECT_EQ(catalog_->ListClientProfiles("pc-2")->size(), 1u);

  // Bad input changes nothing.
  EXPECT_TRUE(absl::IsNotFound(
      catalog_->RecordClientProfile("nobody", Blob('c'), kStart).status()));
  ProfileBlob bad = Blob('c');
  bad.sha256_hex = "../../etc";
  EXPECT_TRUE(absl::IsInvalidArgument(
      catalog_->RecordClientProfile("pc-1", bad, kStart).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(catalog_->GetProfileBlob("not-an-id").status()));
  EXPECT_TRUE(absl::IsNotFound(
      catalog_->GetProfileBlob(std::string(64, 'c')).status()));
  EXPECT_EQ(catalog_->ListClientProfiles("pc-1")->size(), 3u);
}

// ---- Restore builds and boot templates --------------------------------------

TEST_F(CatalogTest, RestoreBuildCommitsACustomizedImageAndItsCacheEntry) {
  AddClient("pc-1");
  ASSERT_TRUE(catalog_->PutMediaAgent(MakeMediaAgent("ma1")).ok());
  ASSERT_TRUE(catalog_
                  ->CommitBackup(MakeBackup("bk1", "pc-1", kStart),
                                 RunningBackupJob("pc-1"))
                  .ok());
  Job spec;
  spec.kind = JobKind::kRestoreBuild;
  spec.client_id = "pc-1";
  spec.backup_id = "bk1";
  spec.target = "client:lab-1";
  auto job = catalog_->CreateJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(catalog_->StartJob(job->job_id).ok());
  JobProgress p{0, 0, 0, "customize: initramfs"};
  ASSERT_TRUE(catalog_->UpdateJobProgress(job->job_id, p).ok());
  EXPECT_EQ(catalog_->GetJob(job->job_id)->progress.phase,
            "customize: initramfs");
  // It succeeds only by committing its image.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      catalog_->FinishJob(job->job_id, JobState::kSucceeded, "")));
  EXPECT_TRUE(absl::IsNotFound(
      catalog_->FindCustomizedImage("bk1", "sha/digest").status()));

  now_ += 1000;
  BackupEntry image = MakeBackup("bk1-c2", "pc-1", kStart + 1000);
  image.kind = BackupKind::kCustomized;
  image.build_key = "sha/digest";
  // A customized image needs its parent, and the job's own backup.
  Status s = catalog_->CommitBackup(image, job->job_id);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  image.parent_id = "bk0";
  s = catalog_->CommitBackup(image, job->job_id);
  EXPECT_FALSE(s.ok());
  image.parent_id = "bk1";
  ASSERT_TRUE(catalog_->CommitBackup(image, job->job_id).ok());

  auto done = catalog_->GetJob(job->job_id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(done->backup_id, "bk1");  // the source stays
  EXPECT_EQ(done->result_backup_id, "bk1-c2");
  EXPECT_EQ(done->progress.phase, "");
  auto cached = catalog_->FindCustomizedImage("bk1", "sha/digest");
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(cached->backup_id, "bk1-c2");
  EXPECT_EQ(cached->kind, BackupKind::kCustomized);
  EXPECT_EQ(cached->build_key, "sha/digest");
  EXPECT_TRUE(absl::IsNotFound(
      catalog_->FindCustomizedImage("bk1", "sha/other").status()));

  // A backup job cannot commit a customized image, nor a build job a backup.
  uint64_t backup_job = RunningBackupJob("pc-1");
  BackupEntry wrong = image;
  wrong.backup_id = "bk1-c9";
  s = catalog_->CommitBackup(wrong, backup_job);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;

  Reopen();
  EXPECT_EQ(catalog_->FindCustomizedImage("bk1", "sha/digest")->backup_id,
            "bk1-c2");
  EXPECT_EQ(catalog_->GetJob(job->job_id)->kind, JobKind::kRestoreBuild);
}

TEST_F(CatalogTest, BootTemplatesCreateGetListDelete) {
  AddClient("pc-1");
  ASSERT_TRUE(catalog_->PutMediaAgent(MakeMediaAgent("ma1")).ok());
  ASSERT_TRUE(catalog_
                  ->CommitBackup(MakeBackup("bk1", "pc-1", kStart),
                                 RunningBackupJob("pc-1"))
                  .ok());
  BootTemplate t;
  t.name = "debian12";
  t.image_id = "bk1";
  t.kernel_version = "6.1.0-30-amd64";
  t.os_name = "Debian GNU/Linux 12 (bookworm)";
  t.created_by = "alice";
  AuditEntry audit = MakeAudit("template.import", "template/debian12");
  ASSERT_TRUE(catalog_->CreateTemplate(t, &audit).ok());
  EXPECT_EQ(AuditCount(), 1u);
  auto got = catalog_->GetTemplate("debian12");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->image_id, "bk1");
  EXPECT_EQ(got->kernel_version, "6.1.0-30-amd64");
  EXPECT_EQ(got->created_us, kStart);

  EXPECT_TRUE(absl::IsAlreadyExists(catalog_->CreateTemplate(t)));
  BootTemplate bad = t;
  bad.name = "a/b";
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->CreateTemplate(bad)));
  bad = t;
  bad.name = "other";
  bad.image_id = "nosuch";
  EXPECT_TRUE(absl::IsNotFound(catalog_->CreateTemplate(bad)));
  bad.image_id = "bk1";
  bad.kernel_version.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->CreateTemplate(bad)));
  ASSERT_TRUE(catalog_->SetBackupStatus("bk1", BackupStatus::kDamaged).ok());
  bad = t;
  bad.name = "other";
  EXPECT_TRUE(absl::IsFailedPrecondition(catalog_->CreateTemplate(bad)));

  auto all = catalog_->ListTemplates();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  Reopen();
  ASSERT_TRUE(catalog_->DeleteTemplate("debian12").ok());
  EXPECT_TRUE(absl::IsNotFound(catalog_->GetTemplate("debian12").status()));
  EXPECT_TRUE(absl::IsNotFound(catalog_->DeleteTemplate("debian12")));
  EXPECT_TRUE(catalog_->GetBackup("bk1").ok());  // the image stays
}

}  // namespace
}  // namespace cairn
