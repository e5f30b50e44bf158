#include "cli/ctl_args.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "common/strings.h"

namespace cairn::ctl {
namespace {

std::string EnvOr(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

void OnParse(CLI::App* cmd, CtlInvocation* inv, CtlCommand command) {
  cmd->parse_complete_callback([inv, command] { inv->command = command; });
}

CLI::App* Leaf(CLI::App* parent, const std::string& name,
               const std::string& help, CtlInvocation* inv,
               CtlCommand command) {
  CLI::App* cmd = parent->add_subcommand(name, help);
  OnParse(cmd, inv, command);
  return cmd;
}

// The options `profile diff` and `restore plan` share: the target (a
// client or a profile file), NIC pairs and the conflict choice.
void AddDiffTargetOptions(CLI::App* cmd, CtlInvocation* inv) {
  auto* client = cmd->add_option("--target", inv->client,
                                 "Target client (its latest profile)");
  auto* file = cmd->add_option(
      "--target-file", inv->target_file,
      "Target profile file (cairn-profile collect, or profile show --out)");
  client->excludes(file);
  cmd->add_option("--nic-map", inv->nic_map,
                  "Pair NICs explicitly: SOURCE=TARGET (name or MAC); "
                  "repeatable");
  cmd->add_option("--conflict-choice", inv->conflict_choice,
                  "For devices the source kernel cannot drive: "
                  "use-template-kernel or proceed-without-driver");
  cmd->add_option("--template", inv->template_name,
                  "The boot template whose kernel use-template-kernel "
                  "installs (cairnctl template list)");
}

// What `restore plan` and `restore build` add to the diff options.
void AddRestorePlanOptions(CLI::App* cmd, CtlInvocation* inv) {
  AddDiffTargetOptions(cmd, inv);
  cmd->add_flag("--drop-guest-tools", inv->drop_guest_tools,
                "Disable guest tools for a hypervisor the target is not");
}

}  // namespace

void DefineCtlCommands(CLI::App* app, CtlInvocation* inv) {
  inv->server = EnvOr("CAIRN_SERVER");
  inv->cred_dir = EnvOr("CAIRN_CRED_DIR");
  app->description(
      "cairnctl: administer a Cairn storage manager (cairn-server)\n"
      "Exit codes: 0 ok; 1 the job failed or was cancelled; 2 usage or "
      "invalid input; 3 not found; 5 permission denied or failed "
      "precondition; 7 server unavailable or timed out; 10 other errors.");
  app->require_subcommand(1);
  app->fallthrough();
  app->add_option("--server", inv->server,
                  "cairn-server address HOST:PORT (default: $CAIRN_SERVER)");
  app->add_option("--cred-dir", inv->cred_dir,
                  "Directory with ca.pem, cert.pem, key.pem of an admin "
                  "credential (cairn-server init writes SERVERDIR/admin; "
                  "default: $CAIRN_CRED_DIR)");
  app->add_flag("--json", inv->json, "Machine-readable output on stdout");
  app->add_option("--timeout", inv->timeout,
                  "Deadline of each call, e.g. 30s, 2m (default 30s)");

  // token
  CLI::App* token = app->add_subcommand("token", "Enrollment tokens");
  token->require_subcommand(1);
  CLI::App* create =
      Leaf(token, "create", "Create a one-time enrollment token (shown once)",
           inv, CtlCommand::kTokenCreate);
  create->add_option("--role", inv->role, "What the token enrolls: agent|media")
      ->required();
  create->add_option("--ttl", inv->ttl,
                     "How long the token stays valid, 1s..7d (default 1h)");

  // clients
  CLI::App* clients =
      app->add_subcommand("clients", "Enrolled client machines");
  clients->require_subcommand(1);
  Leaf(clients, "list", "List clients", inv, CtlCommand::kClientsList);
  Leaf(clients, "show", "Show one client", inv, CtlCommand::kClientsShow)
      ->add_option("ID", inv->id, "Client id")
      ->required();
  Leaf(clients, "revoke",
       "Revoke a client: its certificate is refused from its next call on", inv,
       CtlCommand::kClientsRevoke)
      ->add_option("ID", inv->id, "Client id")
      ->required();

  // backup start
  CLI::App* backup = app->add_subcommand("backup", "Start backups");
  backup->require_subcommand(1);
  CLI::App* bstart = Leaf(backup, "start", "Back up a client's disk or image",
                          inv, CtlCommand::kBackupStart);
  bstart->add_option("--client", inv->client, "Client id")->required();
  bstart
      ->add_option("--source", inv->source,
                   "Block device or image file on the client")
      ->required();
  bstart->add_flag("--incremental", inv->incremental,
                   "Incremental against the client's latest backup");
  bstart->add_flag("--wait", inv->wait,
                   "Watch the job to its end (progress on stderr); exit 1 if "
                   "it fails");

  // backups
  CLI::App* backups = app->add_subcommand("backups", "Committed backups");
  backups->require_subcommand(1);
  Leaf(backups, "list", "List backups", inv, CtlCommand::kBackupsList)
      ->add_option("--client", inv->client, "Only this client's backups");
  Leaf(backups, "show", "Show one backup", inv, CtlCommand::kBackupsShow)
      ->add_option("ID", inv->id, "Backup id")
      ->required();

  // restore start
  CLI::App* restore = app->add_subcommand("restore", "Start restores");
  restore->require_subcommand(1);
  CLI::App* rstart =
      Leaf(restore, "start", "Restore a backup to a file or block device", inv,
           CtlCommand::kRestoreStart);
  rstart->add_option("--backup", inv->backup, "Backup id")->required();
  rstart
      ->add_option("--target", inv->target,
                   "File or block device on the target client")
      ->required();
  rstart->add_option("--client", inv->client,
                     "Target client (default: the backup's own client)");
  rstart->add_flag("--wait", inv->wait,
                   "Watch the job to its end (progress on stderr); exit 1 if "
                   "it fails");
  rstart->add_flag("--resume", inv->resume,
                   "Continue an interrupted restore: keep the target and "
                   "write only the chunks it does not already hold");
  rstart->add_flag("--no-verify", inv->no_verify,
                   "Do not re-read the target after writing to check every "
                   "chunk (verification is on by default)");
  rstart->add_flag("--reboot", inv->reboot,
                   "After success, the target's agent runs its configured "
                   "reboot_command (refused before writing if it has none)");
  CLI::App* rplan = Leaf(
      restore, "plan",
      "The restore build plan for a backup on other hardware: the profile "
      "diff, then the exact changes a build makes (docs/restore-build.md); "
      "exit 1 when something blocks the build",
      inv, CtlCommand::kRestorePlan);
  rplan->add_option("--backup", inv->backup, "Backup to restore")->required();
  AddRestorePlanOptions(rplan, inv);
  rplan->add_option("--out", inv->out,
                    "Also write the plan (JSON) for `cairn-media restore "
                    "build --plan`");
  CLI::App* rbuild = Leaf(
      restore, "build",
      "Build the customized bootable image of a backup for a target (the "
      "plan of `restore plan`) on the media agent holding it; an identical "
      "earlier build is reused. Deliver it with `restore start --backup "
      "IMAGE`",
      inv, CtlCommand::kRestoreBuild);
  rbuild->add_option("--backup", inv->backup, "Backup to customize")
      ->required();
  AddRestorePlanOptions(rbuild, inv);
  rbuild->add_flag("--rebuild", inv->rebuild,
                   "Build again even if an identical build exists");
  rbuild->add_flag("--wait", inv->wait,
                   "Wait for the build, showing its phase and progress");

  // export
  CLI::App* exp =
      Leaf(app, "export",
           "Export an image (a backup or a customized image) as a hypervisor "
           "disk: converted on the server, received into a local file",
           inv, CtlCommand::kExport);
  exp->add_option("--backup", inv->backup, "The image to export")->required();
  exp->add_option("--format", inv->format, "raw, qcow2, vmdk or vhdx")
      ->required()
      ->check(CLI::IsMember({"raw", "qcow2", "vmdk", "vhdx"}));
  exp->add_option("--out", inv->out, "The disk file to write")->required();
  exp->add_flag("--force", inv->force, "Replace an existing --out file");
  exp->add_flag("--quiet", inv->quiet, "No progress lines");

  // template
  CLI::App* tmpl = app->add_subcommand(
      "template",
      "Generic boot templates: images whose kernel a restore build may use");
  tmpl->require_subcommand(1);
  CLI::App* timport =
      Leaf(tmpl, "import",
           "Make an image of the catalog (a backup of a reference machine "
           "with a stock kernel) a boot template",
           inv, CtlCommand::kTemplateImport);
  timport->add_option("--name", inv->template_name, "Template name")
      ->required();
  timport
      ->add_option("--from-backup", inv->backup,
                   "The image (a backup with a recorded profile)")
      ->required();
  timport->add_option("--description", inv->description, "Free text");
  Leaf(tmpl, "list", "List boot templates", inv, CtlCommand::kTemplateList);
  Leaf(tmpl, "show", "Show one boot template", inv, CtlCommand::kTemplateShow)
      ->add_option("name", inv->id, "Template name")
      ->required();
  Leaf(tmpl, "delete",
       "Delete a boot template (its image stays in the catalog)", inv,
       CtlCommand::kTemplateDelete)
      ->add_option("name", inv->id, "Template name")
      ->required();

  // jobs
  CLI::App* jobs = app->add_subcommand("jobs", "Backup and restore jobs");
  jobs->require_subcommand(1);
  CLI::App* jlist = Leaf(jobs, "list", "List jobs", inv, CtlCommand::kJobsList);
  jlist->add_option("--client", inv->client, "Only this client's jobs");
  jlist->add_option("--state", inv->state,
                    "Only jobs in this state: queued, running, succeeded, "
                    "failed, cancelled");
  Leaf(jobs, "watch",
       "Follow a job to its end: progress bar (bytes, rate, ETA) on a "
       "terminal, plain lines otherwise; exit 1 if it fails",
       inv, CtlCommand::kJobsWatch)
      ->add_option("ID", inv->id, "Job id")
      ->required();
  Leaf(jobs, "cancel", "Cancel a queued or running job", inv,
       CtlCommand::kJobsCancel)
      ->add_option("ID", inv->id, "Job id")
      ->required();

  // profile
  CLI::App* profile =
      app->add_subcommand("profile", "Hardware profiles (DESIGN.md 5)");
  profile->require_subcommand(1);
  CLI::App* pshow =
      Leaf(profile, "show",
           "A client's latest hardware profile, or the one recorded with a "
           "backup",
           inv, CtlCommand::kProfileShow);
  pshow->add_option("CLIENT", inv->id, "Client id")->required();
  pshow->add_option("--at", inv->at_backup,
                    "The profile recorded with this backup of the client");
  pshow->add_flag("--full", inv->full,
                  "--json: include each kernel's module indices");
  pshow->add_option("--out", inv->out,
                    "Also write the profile file (usable as --target-file)");
  Leaf(profile, "refresh",
       "Ask a connected client's agent to report its hardware profile now", inv,
       CtlCommand::kProfileRefresh)
      ->add_option("CLIENT", inv->id, "Client id")
      ->required();
  CLI::App* pdiff =
      Leaf(profile, "diff",
           "What restoring a backup onto a target changes: modules, NICs, "
           "disks, boot mode",
           inv, CtlCommand::kProfileDiff);
  pdiff->add_option("--source", inv->backup, "Backup to restore")->required();
  AddDiffTargetOptions(pdiff, inv);

  // browse
  CLI::App* browse = app->add_subcommand(
      "browse",
      "Browse and fetch files of image backups without restoring them "
      "(DESIGN.md 6)");
  browse->require_subcommand(1);
  Leaf(browse, "ls", "List a directory of a backup", inv, CtlCommand::kBrowseLs)
      ->add_option("WHERE", inv->id,
                   "BACKUP:/path, or BACKUP:PARTITION:/path for another "
                   "file system than the root one")
      ->required();
  CLI::App* bfind =
      Leaf(browse, "find", "Find files in one backup by name or path pattern",
           inv, CtlCommand::kBrowseFind);
  bfind->add_option("BACKUP", inv->backup, "Backup id")->required();
  bfind
      ->add_option("PATTERN", inv->pattern,
                   "Shell pattern: without '/' matches names (sshd_*), with "
                   "'/' whole paths (/etc/*/sshd_config)")
      ->required();
  bfind->add_option("--partition", inv->partition,
                    "Only this partition (default: every file system)");
  bfind->add_option("--limit", inv->limit, "Most matches (default 1000)");
  CLI::App* bsearch =
      Leaf(browse, "search",
           "Which backups of a client hold a file: name or path pattern "
           "across all of its backups",
           inv, CtlCommand::kBrowseSearch);
  bsearch->add_option("CLIENT", inv->client, "Client id")->required();
  bsearch->add_option("PATTERN", inv->pattern, "Shell pattern, as for find")
      ->required();
  bsearch->add_option("--limit", inv->limit,
                      "Most matches per backup (default 1000)");
  CLI::App* bget = Leaf(browse, "get",
                        "Fetch a file (atomically, with mode, owner and "
                        "times) or a directory (as a tar stream)",
                        inv, CtlCommand::kBrowseGet);
  bget->add_option("WHERE", inv->id, "BACKUP[:PARTITION]:/path")->required();
  auto* bto = bget->add_option(
      "--to", inv->to,
      "Local file or directory (default: the file's name, or NAME.tar for a "
      "directory; '-' streams the tar to stdout)");
  auto* bto_agent = bget->add_option(
      "--to-agent", inv->to_agent,
      "Restore onto a client through its agent, as a job: CLIENT:/path (the "
      "path the file or directory gets there; its parent must exist)");
  bto->excludes(bto_agent);
  bget->add_flag("--wait", inv->wait,
                 "--to-agent: watch the job to its end (progress on stderr); "
                 "exit 1 if it fails");
  CLI::App* bcat =
      Leaf(browse, "catalogue", "Show (or rebuild) a backup's file catalogue",
           inv, CtlCommand::kBrowseCatalogue);
  bcat->add_option("BACKUP", inv->backup, "Backup id")->required();
  bcat->add_flag("--rebuild", inv->rebuild,
                 "Record the catalogue again from the image");
}

StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(StrCat(
        "'", text, "' is not a duration (examples: 90s, 500ms, 30m, 1h, 7d)"));
  };
  if (text.empty()) return bad();
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  if (digits == 0 || digits > 12) return bad();
  int64_t n = 0;
  std::from_chars(text.data(), text.data() + digits, n);
  std::string_view unit = text.substr(digits);
  int64_t ms_per_unit;
  if (unit.empty() || unit == "s") {
    ms_per_unit = 1000;
  } else if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "m" || unit == "min") {
    ms_per_unit = 60'000;
  } else if (unit == "h") {
    ms_per_unit = 3'600'000;
  } else if (unit == "d") {
    ms_per_unit = 86'400'000;
  } else {
    return bad();
  }
  return std::chrono::milliseconds(n * ms_per_unit);
}

StatusOr<int64_t> ParseTtlSeconds(std::string_view text) {
  auto d = ParseDuration(text);
  if (!d.ok()) {
    return absl::InvalidArgumentError(
        StrCat("--ttl: ", ToStd(d.status().message())));
  }
  int64_t s = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
  if (s < 1 || s > 7 * 86400) {
    return absl::InvalidArgumentError(
        StrCat("--ttl ", text, ": a token lives from 1s to 7d"));
  }
  return s;
}

StatusOr<v1::Role> ParseTokenRole(std::string_view text) {
  if (text == "agent") return v1::ROLE_AGENT;
  if (text == "media") return v1::ROLE_MEDIA;
  return absl::InvalidArgumentError(
      StrCat("--role '", text,
             "': a token enrolls an agent or a media agent "
             "(agent|media)"));
}

StatusOr<std::string> ParseJobStateFilter(std::string_view text) {
  static constexpr std::string_view kStates[] = {
      "queued", "running", "succeeded", "failed", "cancelled"};
  if (text.empty()) return std::string();
  for (std::string_view s : kStates) {
    if (s == text) return std::string(text);
  }
  return absl::InvalidArgumentError(
      StrCat("--state '", text,
             "': expected queued, running, succeeded, failed or cancelled"));
}

StatusOr<uint64_t> ParseJobId(std::string_view text) {
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      id == 0) {
    return absl::InvalidArgumentError(
        StrCat("'", text, "' is not a job id (a positive number)"));
  }
  return id;
}

Status ValidateInvocation(const CtlInvocation& inv) {
  if (inv.server.empty()) {
    return absl::InvalidArgumentError(
        "--server HOST:PORT is required (or set CAIRN_SERVER)");
  }
  if (inv.cred_dir.empty()) {
    return absl::InvalidArgumentError(
        "--cred-dir DIR is required (or set CAIRN_CRED_DIR): the directory "
        "with ca.pem, cert.pem and key.pem, e.g. SERVERDIR/admin");
  }
  auto timeout = ParseDuration(inv.timeout);
  if (!timeout.ok()) {
    return absl::InvalidArgumentError(
        StrCat("--timeout: ", ToStd(timeout.status().message())));
  }
  if (timeout->count() <= 0) {
    return absl::InvalidArgumentError("--timeout must be positive");
  }
  switch (inv.command) {
    case CtlCommand::kNone:
      return absl::InvalidArgumentError("no command given (see --help)");
    case CtlCommand::kTokenCreate:
      CAIRN_RETURN_IF_ERROR(ParseTokenRole(inv.role).status());
      CAIRN_RETURN_IF_ERROR(ParseTtlSeconds(inv.ttl).status());
      break;
    case CtlCommand::kJobsList:
      CAIRN_RETURN_IF_ERROR(ParseJobStateFilter(inv.state).status());
      break;
    case CtlCommand::kJobsWatch:
    case CtlCommand::kJobsCancel:
      CAIRN_RETURN_IF_ERROR(ParseJobId(inv.id).status());
      break;
    case CtlCommand::kProfileDiff:
    case CtlCommand::kRestorePlan:
    case CtlCommand::kRestoreBuild:
      if (inv.client.empty() == inv.target_file.empty()) {
        return absl::InvalidArgumentError(
            StrCat(inv.command == CtlCommand::kProfileDiff   ? "profile diff"
                   : inv.command == CtlCommand::kRestorePlan ? "restore plan"
                                                             : "restore build",
                   " needs --target CLIENT or --target-file FILE"));
      }
      if (!inv.template_name.empty() &&
          inv.conflict_choice != "use-template-kernel") {
        return absl::InvalidArgumentError(
            "--template is used only with --conflict-choice "
            "use-template-kernel");
      }
      if (!inv.conflict_choice.empty() &&
          inv.conflict_choice != "use-template-kernel" &&
          inv.conflict_choice != "proceed-without-driver") {
        return absl::InvalidArgumentError(
            "--conflict-choice is use-template-kernel or "
            "proceed-without-driver");
      }
      for (const std::string& pair : inv.nic_map) {
        size_t eq = pair.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == pair.size()) {
          return absl::InvalidArgumentError(
              StrCat("--nic-map '", pair, "' is not SOURCE=TARGET"));
        }
      }
      break;
    case CtlCommand::kBrowseGet:
      if (inv.wait && inv.to_agent.empty()) {
        return absl::InvalidArgumentError(
            "--wait is for --to-agent (a local get always finishes before "
            "cairnctl exits)");
      }
      break;
    case CtlCommand::kBrowseFind:
    case CtlCommand::kBrowseSearch:
      if (inv.pattern.empty()) {
        return absl::InvalidArgumentError("the search pattern is empty");
      }
      if (inv.limit > 100000) {
        return absl::InvalidArgumentError("--limit is at most 100000");
      }
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

StatusOr<CtlInvocation> ParseCtlArgs(const std::vector<std::string>& args) {
  CtlInvocation inv;
  CLI::App app;
  DefineCtlCommands(&app, &inv);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  CAIRN_RETURN_IF_ERROR(ValidateInvocation(inv));
  return inv;
}

}  // namespace cairn::ctl
