#include "cli/export_command.h"

#include <chrono>
#include <iostream>
#include <memory>

#include "cli/ctl_output.h"
#include "common/cli.h"
#include "common/progress.h"
#include "common/sparse_file.h"
#include "common/strings.h"

namespace cairn::ctl {

int RunExportCommand(AdminClient* client, const CtlInvocation& inv) {
  auto receiver = SparseFileReceiver::Create(inv.out, inv.force);
  if (!receiver.ok()) return ReportCtlError(receiver.status(), inv.json);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  std::unique_ptr<ProgressPrinter> printer;
  std::string phase;
  double phase_start = 0;
  ProgressSnapshot last;
  v1::ExportImageChunk final_chunk;
  bool got_last = false;
  auto show = [&](const v1::ExportImageChunk& c) {
    if (inv.json || inv.quiet) return;
    if (c.phase() != phase) {
      if (printer != nullptr) printer->Finish(last);
      phase = c.phase();
      phase_start = elapsed();
      printer = std::make_unique<ProgressPrinter>(
          phase == "convert" ? StrCat("export ", inv.backup, " (converting)")
                             : StrCat("export ", inv.backup, " (receiving)"));
    }
    last.done_bytes = c.done_bytes();
    last.total_bytes = c.total_bytes();
    last.elapsed_seconds = elapsed() - phase_start;
    last.bytes_per_second =
        last.elapsed_seconds > 0 ? last.done_bytes / last.elapsed_seconds : 0;
    last.eta_seconds =
        last.bytes_per_second > 0 && last.total_bytes >= last.done_bytes
            ? (last.total_bytes - last.done_bytes) / last.bytes_per_second
            : -1;
    printer->Update(last);
  };
  v1::ExportImageRequest req;
  req.set_backup_id(inv.backup);
  req.set_format(inv.format);
  Status s =
      client->ExportImage(req, [&](const v1::ExportImageChunk& c) -> Status {
        if (got_last) {
          return absl::DataLossError("the server sent data after the end");
        }
        if (!c.data().empty()) {
          CAIRN_RETURN_IF_ERROR((*receiver)->Write(c.offset(), c.data()));
        }
        show(c);
        if (c.last()) {
          final_chunk = c;
          got_last = true;
        }
        return Status();
      });
  if (s.ok() && !got_last) {
    s = absl::UnavailableError("the export ended before the whole file came");
  }
  if (s.ok()) {
    s = (*receiver)->Commit(final_chunk.file_size(), final_chunk.sha256());
  }
  if (!s.ok()) return ReportCtlError(s, inv.json);
  if (printer != nullptr) printer->Finish(last);
  const double seconds = elapsed();
  if (inv.json) {
    cli::PrintJson({{"backup_id", inv.backup},
                    {"format", inv.format},
                    {"path", inv.out},
                    {"virtual_size", final_chunk.virtual_size()},
                    {"file_size", final_chunk.file_size()},
                    {"received_bytes", (*receiver)->received_bytes()},
                    {"sha256", final_chunk.sha256()},
                    {"seconds", seconds}});
  } else {
    std::cout << "exported " << inv.backup << " as " << inv.format << " to "
              << inv.out << ": " << FormatBytes(final_chunk.file_size())
              << " file (" << FormatBytes(final_chunk.virtual_size())
              << " disk), sha256 " << final_chunk.sha256() << ", in "
              << FormatDuration(seconds) << "\n";
  }
  return kExitOk;
}

}  // namespace cairn::ctl
