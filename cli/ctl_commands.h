// cairnctl's commands: each takes a validated CtlInvocation
// (cli/ctl_args.h), calls the Admin service through AdminClient, and prints
// the answer (cli/ctl_output.h). Returns the process exit code.
#ifndef CAIRN_CLI_CTL_COMMANDS_H_
#define CAIRN_CLI_CTL_COMMANDS_H_

#include "cli/admin_client.h"
#include "cli/ctl_args.h"

namespace cairn::ctl {

// Connects with the invocation's server, credential and timeout and runs
// its command.
int RunCtlCommand(const CtlInvocation& inv);

// Runs the invocation's command against `client`.
int RunCtlCommandWith(AdminClient* client, const CtlInvocation& inv);

}  // namespace cairn::ctl

#endif  // CAIRN_CLI_CTL_COMMANDS_H_
