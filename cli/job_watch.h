// Following a job to its end for `cairnctl jobs watch` and `--wait`:
// progress (bytes, rate, ETA) on stderr through ProgressPrinter - redrawn
// in place on a terminal, a plain line every few seconds otherwise - then
// the final line (or, with --json, the final JobInfo) on stdout.
//
// Thread safety: call from one thread.
#ifndef CAIRN_CLI_JOB_WATCH_H_
#define CAIRN_CLI_JOB_WATCH_H_

#include <cstdint>
#include <string>

#include "cli/admin_client.h"

namespace cairn::ctl {

// Returns the exit code: 0 if the job succeeded, 1 if it failed or was
// cancelled, 7 if the server could not be reached to the end, else the
// error's code (ExitCodeForStatus).
int WatchJobToEnd(AdminClient* client, uint64_t job_id, bool json);

}  // namespace cairn::ctl

#endif  // CAIRN_CLI_JOB_WATCH_H_
