// cairnctl's output: tables, detail views, --json forms, the final line of
// a watched job, progress snapshots and exit codes.
#include <gtest/gtest.h>

#include "cli/ctl_output.h"

namespace cairn::ctl {
namespace {

v1::JobInfo Job(const std::string& state) {
  v1::JobInfo j;
  j.set_job_id(12);
  j.set_kind("backup");
  j.set_client_id("pc-17");
  j.set_state(state);
  j.set_done_bytes(512 << 20);
  j.set_total_bytes(1 << 30);
  j.set_bytes_per_second(128 << 20);
  j.set_backup_id("pc-17-20261122T053000Z-ab12");
  j.set_created_unix_us(1'700'000'000'000'000);
  j.set_finished_unix_us(1'700'000'004'000'000);
  return j;
}

TEST(CairnctlOutputTest, ExitCodesFollowTheDocumentedTable) {
  EXPECT_EQ(ExitCodeForStatus(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeForStatus(absl::InvalidArgumentError("x")), 2);
  EXPECT_EQ(ExitCodeForStatus(absl::NotFoundError("x")), 3);
  EXPECT_EQ(ExitCodeForStatus(absl::PermissionDeniedError("x")), 5);
  EXPECT_EQ(ExitCodeForStatus(absl::UnauthenticatedError("x")), 5);
  EXPECT_EQ(ExitCodeForStatus(absl::FailedPreconditionError("x")), 5);
  EXPECT_EQ(ExitCodeForStatus(absl::UnavailableError("x")), 7);
  EXPECT_EQ(ExitCodeForStatus(absl::DeadlineExceededError("x")), 7);
  EXPECT_EQ(ExitCodeForStatus(absl::InternalError("x")), 10);
  EXPECT_EQ(ExitCodeForJob(Job("succeeded")), 0);
  EXPECT_EQ(ExitCodeForJob(Job("failed")), 1);
  EXPECT_EQ(ExitCodeForJob(Job("cancelled")), 1);
  EXPECT_TRUE(IsTerminalJobState("cancelled"));
  EXPECT_FALSE(IsTerminalJobState("running"));
}

TEST(CairnctlOutputTest, TableAlignsColumns) {
  EXPECT_EQ(FormatTable({"A", "LONG"}, {{"xxx", "y"}, {"z", ""}}),
            "A    LONG\n"
            "xxx  y\n"
            "z\n");
}

TEST(CairnctlOutputTest, ClientsTableAndJson) {
  v1::ListClientsResponse r;
  auto* c = r.add_clients();
  c->set_client_id("pc-17");
  c->set_hostname("pc-17.lan");
  c->set_connected(true);
  c->set_last_seen_unix_us(1'700'000'000'000'000);
  auto* d = r.add_clients();
  d->set_client_id("pc-2");
  d->set_revoked(true);
  std::string table = FormatClients(r);
  EXPECT_NE(table.find("CLIENT"), std::string::npos);
  EXPECT_NE(table.find("pc-17.lan"), std::string::npos);
  EXPECT_NE(table.find("connected"), std::string::npos);
  EXPECT_NE(table.find("revoked"), std::string::npos);
  EXPECT_NE(table.find("2023-11-14T22:13:20Z"), std::string::npos);
  EXPECT_EQ(FormatClients(v1::ListClientsResponse()), "no clients enrolled\n");
  auto j = ClientToJson(*c);
  EXPECT_EQ(j["client_id"], "pc-17");
  EXPECT_EQ(j["connected"], true);
  EXPECT_EQ(j["last_seen"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(ClientToJson(*d)["last_seen"], "-");
}

TEST(CairnctlOutputTest, JobViews) {
  v1::JobInfo running = Job("running");
  auto j = JobToJson(running);
  EXPECT_EQ(j["job_id"], 12);
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["done_bytes"], 512u << 20);
  v1::ListJobsResponse list;
  *list.add_jobs() = running;
  EXPECT_NE(FormatJobs(list).find("50%"), std::string::npos);
  EXPECT_EQ(FormatJobQueued(running), "job 12 running (backup on pc-17)");

  EXPECT_EQ(FormatJobOutcome(Job("succeeded")),
            "job 12 succeeded: backup pc-17-20261122T053000Z-ab12 committed, "
            "1.00 GiB image in 4s");
  v1::JobInfo failed = Job("failed");
  failed.set_error("HasChunks at media agent m:1: ticket expired");
  EXPECT_EQ(FormatJobOutcome(failed),
            "job 12 failed: HasChunks at media agent m:1: ticket expired");
  EXPECT_NE(FormatJob(failed).find("error:     HasChunks"), std::string::npos);
}

TEST(CairnctlOutputTest, ProgressSnapshotUsesTheServersRate) {
  ProgressSnapshot s = JobProgressSnapshot(Job("running"), 4.0);
  EXPECT_EQ(s.done_bytes, 512u << 20);
  EXPECT_EQ(s.total_bytes, 1u << 30);
  EXPECT_DOUBLE_EQ(s.bytes_per_second, 128 << 20);
  EXPECT_DOUBLE_EQ(s.eta_seconds, 4.0);
  v1::JobInfo no_rate = Job("running");
  no_rate.set_bytes_per_second(0);
  s = JobProgressSnapshot(no_rate, 2.0);
  EXPECT_DOUBLE_EQ(s.bytes_per_second, 256 << 20);
  EXPECT_DOUBLE_EQ(s.eta_seconds, 2.0);
}

TEST(CairnctlOutputTest, TokenAndBackupViews) {
  v1::CreateTokenResponse t;
  t.set_token("tok123");
  t.set_ca_fingerprint("ab12");
  std::string text = FormatToken(t, "agent");
  EXPECT_NE(text.find("cairn-agent enroll --server HOST:PORT --token tok123 "
                      "--ca-fingerprint ab12"),
            std::string::npos);
  EXPECT_EQ(TokenToJson(t)["token"], "tok123");
  v1::BackupInfo b;
  b.set_backup_id("b1");
  b.set_kind("incremental");
  b.set_image_size(1 << 20);
  EXPECT_NE(FormatBackup(b).find("1.00 MiB"), std::string::npos);
  EXPECT_EQ(BackupToJson(b)["kind"], "incremental");
}

}  // namespace
}  // namespace cairn::ctl
