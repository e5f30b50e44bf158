#include "cli/ctl_commands.h"

#include <iostream>

#include "cli/ctl_output.h"
#include "cli/job_watch.h"
#include "common/cli.h"

namespace cairn::ctl {
namespace {

// Prints `value` as JSON or through `human`, or reports its error.
template <typename T, typename ToJson, typename Human>
int Print(const StatusOr<T>& value, bool json, ToJson to_json, Human human) {
  if (!value.ok()) return ReportCtlError(value.status(), json);
  if (json) {
    cli::PrintJson(to_json(*value));
  } else {
    std::cout << human(*value);
  }
  return kExitOk;
}

// A just-started job: printed, or followed to its end with --wait.
int StartedJob(AdminClient* client, const StatusOr<v1::JobInfo>& job,
               const CtlInvocation& inv) {
  if (!job.ok()) return ReportCtlError(job.status(), inv.json);
  if (!inv.wait) {
    if (inv.json) {
      cli::PrintJson(JobToJson(*job));
    } else {
      std::cout << FormatJobQueued(*job) << "\nfollow it with: cairnctl jobs "
                << "watch " << job->job_id() << "\n";
    }
    return kExitOk;
  }
  if (!inv.json) std::cerr << FormatJobQueued(*job) << std::endl;
  return WatchJobToEnd(client, job->job_id(), inv.json);
}

}  // namespace

int RunCtlCommand(const CtlInvocation& inv) {
  AdminClientOptions o;
  o.server = inv.server;
  o.cred_dir = inv.cred_dir;
  auto timeout = ParseDuration(inv.timeout);
  if (!timeout.ok()) return ReportCtlError(timeout.status(), inv.json);
  o.timeout = *timeout;
  auto client = AdminClient::Create(o);
  if (!client.ok()) return ReportCtlError(client.status(), inv.json);
  return RunCtlCommandWith(client->get(), inv);
}

int RunCtlCommandWith(AdminClient* client, const CtlInvocation& inv) {
  const bool json = inv.json;
  switch (inv.command) {
    case CtlCommand::kTokenCreate: {
      auto role = ParseTokenRole(inv.role);
      if (!role.ok()) return ReportCtlError(role.status(), json);
      auto ttl = ParseTtlSeconds(inv.ttl);
      if (!ttl.ok()) return ReportCtlError(ttl.status(), json);
      return Print(client->CreateToken(*role, *ttl), json, TokenToJson,
                   [&](const v1::CreateTokenResponse& t) {
                     return FormatToken(t, inv.role);
                   });
    }
    case CtlCommand::kClientsList:
      return Print(
          client->ListClients(), json,
          [](const v1::ListClientsResponse& r) {
            nlohmann::json a = nlohmann::json::array();
            for (const auto& c : r.clients()) a.push_back(ClientToJson(c));
            return nlohmann::json{{"clients", a}};
          },
          FormatClients);
    case CtlCommand::kClientsShow:
      return Print(client->GetClient(inv.id), json, ClientToJson, FormatClient);
    case CtlCommand::kClientsRevoke: {
      Status s = client->RevokeClient(inv.id);
      if (!s.ok()) return ReportCtlError(s, json);
      if (json) {
        cli::PrintJson({{"client_id", inv.id}, {"revoked", true}});
      } else {
        std::cout << "client " << inv.id
                  << " revoked: its certificate is refused from now on\n";
      }
      return kExitOk;
    }
    case CtlCommand::kBackupStart: {
      v1::StartBackupRequest req;
      req.set_client_id(inv.client);
      req.set_source_path(inv.source);
      req.set_incremental(inv.incremental);
      return StartedJob(client, client->StartBackup(req), inv);
    }
    case CtlCommand::kBackupsList:
      return Print(
          client->ListBackups(inv.client), json,
          [](const v1::ListBackupsResponse& r) {
            nlohmann::json a = nlohmann::json::array();
            for (const auto& b : r.backups()) a.push_back(BackupToJson(b));
            return nlohmann::json{{"backups", a}};
          },
          FormatBackups);
    case CtlCommand::kBackupsShow:
      return Print(client->GetBackup(inv.id), json, BackupToJson, FormatBackup);
    case CtlCommand::kRestoreStart: {
      v1::StartRestoreRequest req;
      req.set_backup_id(inv.backup);
      req.set_client_id(inv.client);
      req.set_target_path(inv.target);
      return StartedJob(client, client->StartRestore(req), inv);
    }
    case CtlCommand::kJobsList: {
      auto state = ParseJobStateFilter(inv.state);
      if (!state.ok()) return ReportCtlError(state.status(), json);
      return Print(
          client->ListJobs(inv.client, *state), json,
          [](const v1::ListJobsResponse& r) {
            nlohmann::json a = nlohmann::json::array();
            for (const auto& j : r.jobs()) a.push_back(JobToJson(j));
            return nlohmann::json{{"jobs", a}};
          },
          FormatJobs);
    }
    case CtlCommand::kJobsWatch: {
      auto id = ParseJobId(inv.id);
      if (!id.ok()) return ReportCtlError(id.status(), json);
      return WatchJobToEnd(client, *id, json);
    }
    case CtlCommand::kJobsCancel: {
      auto id = ParseJobId(inv.id);
      if (!id.ok()) return ReportCtlError(id.status(), json);
      return Print(client->CancelJob(*id), json, JobToJson,
                   [](const v1::JobInfo& j) {
                     return "cancel requested: " + FormatJobQueued(j) + "\n";
                   });
    }
    case CtlCommand::kNone:
      break;
  }
  return ReportCtlError(absl::InvalidArgumentError("no command (see --help)"),
                        json);
}

}  // namespace cairn::ctl
