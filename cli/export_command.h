// `cairnctl export`: a hypervisor disk (raw, qcow2, VMDK, VHDX) of an image
// the server's embedded media agent holds, converted on the server and
// received into a local file (Admin.ExportImage; docs/export.md). The file
// is written under a hidden temporary name next to --out, checked against
// the server's SHA-256, fsync'ed and only then renamed (common/sparse_file.h);
// an interrupted or damaged transfer leaves nothing under the final name.
//
// Thread safety: runs on the calling thread.
#ifndef CAIRN_CLI_EXPORT_COMMAND_H_
#define CAIRN_CLI_EXPORT_COMMAND_H_

#include "cli/admin_client.h"
#include "cli/ctl_args.h"

namespace cairn::ctl {

// Exit code: 0 ok, else cli's code for the error.
int RunExportCommand(AdminClient* client, const CtlInvocation& inv);

}  // namespace cairn::ctl

#endif  // CAIRN_CLI_EXPORT_COMMAND_H_
