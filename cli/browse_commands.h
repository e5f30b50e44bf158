// cairnctl browse: list, search and fetch files of image backups without a
// restore (DESIGN.md section 6; docs/browse.md).
//
//   browse ls BACKUP[:PARTITION]:/path
//   browse find BACKUP PATTERN [--partition N] [--limit N]
//   browse search CLIENT PATTERN [--limit N]     (every backup of CLIENT)
//   browse get BACKUP[:PARTITION]:/path [--to LOCAL]
//   browse get BACKUP[:PARTITION]:/path --to-agent CLIENT:/path [--wait]
//   browse catalogue BACKUP [--rebuild]
//
// `get` of a file writes it atomically (temporary file, fsync, rename) with
// its mode, times and - when run as root - owner; a symlink at the
// destination is replaced, never followed. `get` of a directory writes a tar
// stream (pax format, nanosecond times) of everything under it to --to FILE,
// or to stdout with --to -. Progress (bytes, rate, ETA) goes to stderr.
//
// `get --to-agent` restores the file, symlink or directory onto a client
// through its agent instead (Admin.StartFileRestore, a file-restore job):
// it prints the queued job, or follows it to its end with --wait (exit 1
// if it fails). The client's agent writes it atomically with mode, owner
// and times and never follows a symlink (agent/file_restore.h).
//
// Thread safety: not thread-safe.
#ifndef CAIRN_CLI_BROWSE_COMMANDS_H_
#define CAIRN_CLI_BROWSE_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cli/admin_client.h"
#include "cli/ctl_args.h"
#include "common/status.h"

namespace cairn::ctl {

// "BACKUP:/path" or "BACKUP:PARTITION:/path" (PARTITION a number, 0 for a
// whole-disk file system). InvalidArgument naming what is wrong.
struct BrowseTarget {
  std::string backup_id;
  std::optional<uint32_t> partition;
  std::string path;
};
StatusOr<BrowseTarget> ParseBrowseTarget(std::string_view text);

// "CLIENT:/path" of --to-agent: a client id and an absolute path without
// ".." components. InvalidArgument naming what is wrong.
struct AgentDestination {
  std::string client_id;
  std::string path;
};
StatusOr<AgentDestination> ParseAgentDestination(std::string_view text);

// Runs one browse command; returns the exit code.
int RunBrowseCommand(AdminClient* admin, const CtlInvocation& inv);

}  // namespace cairn::ctl

#endif  // CAIRN_CLI_BROWSE_COMMANDS_H_
