// cairnctl's command line: every command and flag, parsed into a
// CtlInvocation, plus the pure parsers for the values flags take. Kept free
// of gRPC so the parsing is unit-tested on its own.
//
//   cairnctl [--server HOST:PORT] [--cred-dir DIR] [--json] [--timeout D]
//     token create --role agent|media [--ttl 1h]
//     clients list | show ID | revoke ID
//     backup start --client ID --source PATH [--incremental] [--wait]
//     backups list [--client ID] | show ID
//     restore start --backup ID --target PATH [--client ID] [--wait]
//                   [--resume] [--no-verify] [--reboot]
//     jobs list [--client ID] [--state S] | watch ID | cancel ID
//     profile show CLIENT [--at BACKUP] [--full] [--out FILE] | refresh CLIENT
//     profile diff --source BACKUP (--target CLIENT | --target-file FILE)
//                  [--nic-map SRC=DST]... [--conflict-choice C] [--template T]
//     restore plan --backup ID (--target CLIENT | --target-file FILE)
//                  [diff options] [--drop-guest-tools] [--out FILE]
//     restore build --backup ID (--target CLIENT | --target-file FILE)
//                   [diff options] [--drop-guest-tools] [--rebuild] [--wait]
//     template import --name N --from-backup ID [--description D] |
//              list | show NAME | delete NAME
//     export --backup ID --format raw|qcow2|vmdk|vhdx --out FILE [--force]
//     browse ls BACKUP[:PARTITION]:/path | find BACKUP PATTERN |
//            search CLIENT PATTERN |
//            get BACKUP[:PARTITION]:/path [--to L | --to-agent C:/P [--wait]] |
//            catalogue BACKUP [--rebuild]
//
// Global flags may also follow the command. --server and --cred-dir
// default to $CAIRN_SERVER and $CAIRN_CRED_DIR.
//
// Thread safety: pure functions.
#ifndef CAIRN_CLI_CTL_ARGS_H_
#define CAIRN_CLI_CTL_ARGS_H_

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/v1/agent.pb.h"
#include "common/status.h"

namespace cairn::ctl {

enum class CtlCommand {
  kNone,
  kTokenCreate,
  kClientsList,
  kClientsShow,
  kClientsRevoke,
  kBackupStart,
  kBackupsList,
  kBackupsShow,
  kRestoreStart,
  kJobsList,
  kJobsWatch,
  kJobsCancel,
  kProfileShow,
  kProfileRefresh,
  kProfileDiff,
  kRestorePlan,
  kRestoreBuild,
  kTemplateImport,
  kTemplateList,
  kTemplateShow,
  kTemplateDelete,
  kExport,
  kBrowseLs,
  kBrowseFind,
  kBrowseSearch,
  kBrowseGet,
  kBrowseCatalogue,
};

struct CtlInvocation {
  CtlCommand command = CtlCommand::kNone;
  // Global.
  std::string server;
  std::string cred_dir;
  bool json = false;
  std::string timeout = "30s";
  // Per command.
  std::string role;        // token create
  std::string ttl = "1h";  // token create
  std::string id;      // clients show/revoke, backups show, jobs watch/cancel
  std::string client;  // backup start, backups list, restore start, jobs list
  std::string source;  // backup start
  std::string backup;  // restore start
  std::string target;  // restore start
  std::string state;   // jobs list
  bool incremental = false;  // backup start
  bool wait = false;       // backup start, restore start, browse get --to-agent
  bool resume = false;     // restore start
  bool no_verify = false;  // restore start
  bool reboot = false;     // restore start
  // profile show / diff
  std::string at_backup;             // show --at
  bool full = false;                 // show --full: module indices in the JSON
  std::string out;                   // show --out: the binary profile file
  std::string target_file;           // diff --target-file
  std::vector<std::string> nic_map;  // diff --nic-map
  std::string conflict_choice;       // diff --conflict-choice
  bool drop_guest_tools = false;     // restore plan --drop-guest-tools
  std::string
      template_name;  // diff/plan/build --template; template import --name
  std::string description;  // template import
  std::string format;       // export
  bool force = false;       // export: replace --out
  bool quiet = false;       // export: no progress lines
  // browse (cli/browse_commands.h); `id` holds BACKUP[:PARTITION]:/path for
  // ls and get, `backup` the backup of find and catalogue, `client` the
  // client of search.
  std::string pattern;                // find, search
  std::optional<uint32_t> partition;  // find --partition
  uint32_t limit = 0;                 // find, search --limit (0: 1000)
  std::string to;                     // get --to
  std::string to_agent;               // get --to-agent CLIENT:/path
  bool rebuild = false;  // catalogue --rebuild, restore build --rebuild
};

// Defines every command and flag on `app`, writing into `*inv` (which must
// outlive `app`). A leaf command sets inv->command when parsed.
void DefineCtlCommands(CLI::App* app, CtlInvocation* inv);

// Parses `args` (without the program name) and validates the values.
// InvalidArgument with CLI11's or the validator's message on bad usage.
// (main() parses through CLI11 itself to print help; tests use this.)
StatusOr<CtlInvocation> ParseCtlArgs(const std::vector<std::string>& args);

// Checks the values of a parsed invocation (durations, role, state, ids,
// required globals). InvalidArgument naming the flag.
Status ValidateInvocation(const CtlInvocation& inv);

// "90", "90s", "500ms", "30m", "1h", "7d". InvalidArgument otherwise.
StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text);
// A token lifetime: a duration from 1 second to 7 days, in whole seconds.
StatusOr<int64_t> ParseTtlSeconds(std::string_view text);
// "agent" or "media" (what a token may enroll).
StatusOr<v1::Role> ParseTokenRole(std::string_view text);
// "" (any) or one of queued, running, succeeded, failed, cancelled.
StatusOr<std::string> ParseJobStateFilter(std::string_view text);
// A positive decimal job id.
StatusOr<uint64_t> ParseJobId(std::string_view text);

}  // namespace cairn::ctl

#endif  // CAIRN_CLI_CTL_ARGS_H_
