// cairnctl's output: human tables and detail views, the --json forms, the
// final line of a watched job, and exit codes. Pure functions over the
// admin API's messages (proto/cairn/v1/admin.proto), unit-tested without a
// server.
//
// Exit codes (documented in docs/user-guide.md):
//   0 ok; 1 the job failed or was cancelled; 2 usage or invalid input;
//   3 not found; 5 permission denied, unauthenticated or failed
//   precondition; 7 server unavailable or deadline exceeded; 10 other.
#ifndef CAIRN_CLI_CTL_OUTPUT_H_
#define CAIRN_CLI_CTL_OUTPUT_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/v1/admin.pb.h"
#include "common/progress.h"
#include "common/status.h"

namespace cairn::ctl {

// The exit codes of every Cairn CLI (common/cli.h).
inline constexpr int kExitOk = 0;
inline constexpr int kExitJobFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotFound = 3;
inline constexpr int kExitDataLoss = 4;
inline constexpr int kExitDenied = 5;
inline constexpr int kExitExhausted = 6;
inline constexpr int kExitUnavailable = 7;
inline constexpr int kExitOther = 10;

int ExitCodeForStatus(const Status& status);  // cli::ExitCode
// 0 for succeeded, 1 for failed or cancelled, 0 for a job still running.
int ExitCodeForJob(const v1::JobInfo& job);
bool IsTerminalJobState(std::string_view state);

// cli::ReportError: "error: <message>" on stderr, or with `json` the object
// {"error": {"code": "UNAVAILABLE", "message": ...}} on stdout; returns
// ExitCodeForStatus.
int ReportCtlError(const Status& status, bool json);

// Columns padded to their widest cell, two spaces apart, header first.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

nlohmann::json TokenToJson(const v1::CreateTokenResponse& token);
nlohmann::json ClientToJson(const v1::ClientInfo& client);
nlohmann::json BackupToJson(const v1::BackupInfo& backup);
nlohmann::json JobToJson(const v1::JobInfo& job);
nlohmann::json TemplateToJson(const v1::TemplateInfo& t);
std::string FormatTemplates(const v1::ListTemplatesResponse& templates);
std::string FormatTemplate(const v1::TemplateInfo& t);

std::string FormatToken(const v1::CreateTokenResponse& token,
                        std::string_view role);
std::string FormatClients(const v1::ListClientsResponse& clients);
std::string FormatClient(const v1::ClientInfo& client);
std::string FormatBackups(const v1::ListBackupsResponse& backups);
std::string FormatBackup(const v1::BackupInfo& backup);
std::string FormatJobs(const v1::ListJobsResponse& jobs);
std::string FormatJob(const v1::JobInfo& job);
// One line for a job that was just queued: "job 12 queued (backup of pc1)".
std::string FormatJobQueued(const v1::JobInfo& job);
// The final line of a watched job, e.g.
// "job 12 succeeded: backup pc1-... committed, 1.00 GiB image, 12.0 MiB new"
// or "job 12 failed: <error>".
std::string FormatJobOutcome(const v1::JobInfo& job);

// A ProgressSnapshot of a running job for the progress printer.
// `elapsed_seconds` is how long the caller has watched.
ProgressSnapshot JobProgressSnapshot(const v1::JobInfo& job,
                                     double elapsed_seconds);

}  // namespace cairn::ctl

#endif  // CAIRN_CLI_CTL_OUTPUT_H_
