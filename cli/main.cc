// cairnctl: the Cairn admin CLI, a thin gRPC client of cairn-server's Admin
// service. Commands and flags: cli/ctl_args.h; output and exit codes:
// cli/ctl_output.h; user guide: docs/user-guide.md.
#include <CLI/CLI.hpp>

#include "cli/ctl_args.h"
#include "cli/ctl_commands.h"
#include "cli/ctl_output.h"

int main(int argc, char** argv) {
  using namespace cairn::ctl;
  CtlInvocation inv;
  CLI::App app;
  app.name("cairnctl");
  DefineCtlCommands(&app, &inv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help, or the usage error
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (cairn::Status s = ValidateInvocation(inv); !s.ok()) {
    return ReportCtlError(s, inv.json);
  }
  return RunCtlCommand(inv);
}
