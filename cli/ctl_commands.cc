#include "cli/ctl_commands.h"

#include <iostream>

#include "cli/browse_commands.h"
#include "cli/ctl_output.h"
#include "cli/export_command.h"
#include "cli/job_watch.h"
#include "common/cli.h"
#include "common/hardware_profile.h"
#include "common/strings.h"

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

// profile show: the profile as text, or JSON (module indices only with
// --full), optionally written to a file too.
int ShowProfile(AdminClient* client, const CtlInvocation& inv) {
  v1::GetProfileRequest req;
  if (inv.at_backup.empty()) {
    req.set_client_id(inv.id);
  } else {
    req.set_backup_id(inv.at_backup);
  }
  auto info = client->GetProfile(req);
  if (!info.ok()) return ReportCtlError(info.status(), inv.json);
  if (!inv.at_backup.empty() && info->client_id() != inv.id) {
    return ReportCtlError(
        absl::InvalidArgumentError(
            StrCat("backup '", inv.at_backup, "' belongs to client '",
                   info->client_id(), "', not '", inv.id, "'")),
        inv.json);
  }
  auto profile = DecompressHardwareProfile(
      info->profile_zstd(), info->raw_size(), "the server's answer");
  if (!profile.ok()) return ReportCtlError(profile.status(), inv.json);
  if (!inv.out.empty()) {
    Status s =
        WriteFileAtomically(inv.out, EncodeHardwareProfileFile(*profile));
    if (!s.ok()) return ReportCtlError(s, inv.json);
  }
  if (inv.json) {
    auto body = HardwareProfileToJson(*profile, inv.full);
    if (!body.ok()) return ReportCtlError(body.status(), inv.json);
    nlohmann::json out = {
        {"client_id", info->client_id()},
        {"profile_sha256", info->profile_sha256()},
        {"reported", cli::FormatTimestamp(info->reported_unix_us())},
        {"profile", nlohmann::json::parse(*body, nullptr, false)}};
    cli::PrintJson(out);
  } else {
    std::cout << "profile " << info->profile_sha256() << " of "
              << info->client_id() << ", reported "
              << cli::FormatTimestamp(info->reported_unix_us()) << "\n"
              << RenderHardwareProfileText(*profile);
  }
  return kExitOk;
}

// The source and target of a DiffProfilesRequest or StartRestoreBuildRequest
// (they share field names): --backup, --target or --target-file (read and
// compressed here), --nic-map, --conflict-choice, --template,
// --drop-guest-tools.
template <typename Request>
Status FillRestoreTarget(const CtlInvocation& inv, Request* req) {
  req->set_source_backup_id(inv.backup);
  if (inv.target_file.empty()) {
    req->set_target_client_id(inv.client);
  } else {
    CAIRN_ASSIGN_OR_RETURN(v1::HardwareProfile target,
                           ReadHardwareProfileFile(inv.target_file));
    uint64_t raw_size = 0;
    CAIRN_ASSIGN_OR_RETURN(std::string zstd,
                           CompressHardwareProfile(target, &raw_size));
    req->set_target_raw_size(raw_size);
    req->set_target_profile_zstd(std::move(zstd));
  }
  for (const std::string& pair : inv.nic_map) req->add_nic_map(pair);
  req->set_conflict_choice(inv.conflict_choice);
  req->set_template_name(inv.template_name);
  req->set_drop_guest_tools(inv.drop_guest_tools);
  return Status();
}

// restore build: queued on the server, or the cached image.
int StartRestoreBuild(AdminClient* client, const CtlInvocation& inv) {
  v1::StartRestoreBuildRequest req;
  if (Status s = FillRestoreTarget(inv, &req); !s.ok()) {
    return ReportCtlError(s, inv.json);
  }
  req.set_rebuild(inv.rebuild);
  auto resp = client->StartRestoreBuild(req);
  if (!resp.ok()) return ReportCtlError(resp.status(), inv.json);
  if (resp->cached()) {
    if (inv.json) {
      cli::PrintJson(
          {{"cached", true},
           {"image_id", resp->image_id()},
           {"plan", nlohmann::json::parse(resp->plan_json(), nullptr, false)}});
    } else {
      std::cout << "an identical build exists: customized image "
                << resp->image_id()
                << "\n(--rebuild builds it again)\ndeliver it with: cairnctl "
                   "restore start --backup "
                << resp->image_id() << " --client CLIENT --target DEVICE\n";
    }
    return kExitOk;
  }
  if (!inv.json) std::cerr << resp->plan_text();
  return StartedJob(client, resp->job(), inv);
}

// template import|list|show|delete.
int RunTemplateCommand(AdminClient* client, const CtlInvocation& inv) {
  const bool json = inv.json;
  switch (inv.command) {
    case CtlCommand::kTemplateImport: {
      v1::ImportTemplateRequest req;
      req.set_name(inv.template_name);
      req.set_from_backup_id(inv.backup);
      req.set_description(inv.description);
      return Print(client->ImportTemplate(req), json, TemplateToJson,
                   FormatTemplate);
    }
    case CtlCommand::kTemplateList:
      return Print(
          client->ListTemplates(), json,
          [](const v1::ListTemplatesResponse& r) {
            nlohmann::json a = nlohmann::json::array();
            for (const auto& t : r.templates()) a.push_back(TemplateToJson(t));
            return nlohmann::json{{"templates", a}};
          },
          FormatTemplates);
    case CtlCommand::kTemplateShow:
      return Print(client->GetTemplate(inv.id), json, TemplateToJson,
                   FormatTemplate);
    case CtlCommand::kTemplateDelete: {
      Status s = client->DeleteTemplate(inv.id);
      if (!s.ok()) return ReportCtlError(s, json);
      if (json) {
        cli::PrintJson({{"name", inv.id}, {"deleted", true}});
      } else {
        std::cout << "template " << inv.id
                  << " deleted (its image stays in the catalog)\n";
      }
      return kExitOk;
    }
    default:
      return ReportCtlError(absl::InternalError("not a template command"),
                            json);
  }
}

// profile diff: the plan, computed by the server.
int DiffProfiles(AdminClient* client, const CtlInvocation& inv) {
  v1::DiffProfilesRequest req;
  if (Status s = FillRestoreTarget(inv, &req); !s.ok()) {
    return ReportCtlError(s, inv.json);
  }
  const bool restore_plan = inv.command == CtlCommand::kRestorePlan;
  req.set_restore_plan(restore_plan);
  auto resp = client->DiffProfiles(req);
  if (!resp.ok()) return ReportCtlError(resp.status(), inv.json);
  if (restore_plan) {
    if (!inv.out.empty()) {
      if (Status s = WriteFileAtomically(inv.out, resp->restore_plan_json());
          !s.ok()) {
        return ReportCtlError(s, inv.json);
      }
    }
    nlohmann::json build =
        nlohmann::json::parse(resp->restore_plan_json(), nullptr, false);
    const bool ready = build.is_object() && !build.contains("blockers");
    if (inv.json) {
      cli::PrintJson(
          {{"source_profile_sha256", resp->source_profile_sha256()},
           {"target_profile_sha256", resp->target_profile_sha256()},
           {"diff", nlohmann::json::parse(resp->json(), nullptr, false)},
           {"plan", build},
           {"ready", ready}});
    } else {
      std::cout << resp->text() << "\n" << resp->restore_plan_text();
      if (!inv.out.empty()) std::cout << "Plan written to " << inv.out << "\n";
    }
    return ready ? kExitOk : 1;
  }
  if (inv.json) {
    nlohmann::json plan = nlohmann::json::parse(resp->json(), nullptr, false);
    cli::PrintJson({{"source_profile_sha256", resp->source_profile_sha256()},
                    {"target_profile_sha256", resp->target_profile_sha256()},
                    {"plan", plan}});
  } else {
    std::cout << resp->text();
  }
  return kExitOk;
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
    case CtlCommand::kProfileShow:
      return ShowProfile(client, inv);
    case CtlCommand::kProfileDiff:
    case CtlCommand::kRestorePlan:
      return DiffProfiles(client, inv);
    case CtlCommand::kRestoreBuild:
      return StartRestoreBuild(client, inv);
    case CtlCommand::kTemplateImport:
    case CtlCommand::kTemplateList:
    case CtlCommand::kTemplateShow:
    case CtlCommand::kTemplateDelete:
      return RunTemplateCommand(client, inv);
    case CtlCommand::kExport:
      return RunExportCommand(client, inv);
    case CtlCommand::kProfileRefresh: {
      Status s = client->RefreshProfile(inv.id);
      if (!s.ok()) return ReportCtlError(s, json);
      if (json) {
        cli::PrintJson({{"client_id", inv.id}, {"requested", true}});
      } else {
        std::cout << "asked " << inv.id
                  << " for its hardware profile; see it with: cairnctl "
                     "profile show "
                  << inv.id << "\n";
      }
      return kExitOk;
    }
    case CtlCommand::kBackupsShow:
      return Print(client->GetBackup(inv.id), json, BackupToJson, FormatBackup);
    case CtlCommand::kRestoreStart: {
      v1::StartRestoreRequest req;
      req.set_backup_id(inv.backup);
      req.set_client_id(inv.client);
      req.set_target_path(inv.target);
      req.set_resume(inv.resume);
      req.set_no_verify(inv.no_verify);
      req.set_reboot(inv.reboot);
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
    case CtlCommand::kBrowseLs:
    case CtlCommand::kBrowseFind:
    case CtlCommand::kBrowseSearch:
    case CtlCommand::kBrowseGet:
    case CtlCommand::kBrowseCatalogue:
      return RunBrowseCommand(client, inv);
    case CtlCommand::kNone:
      break;
  }
  return ReportCtlError(absl::InvalidArgumentError("no command (see --help)"),
                        json);
}

}  // namespace cairn::ctl
