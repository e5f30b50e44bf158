// cairn-media: the media agent (DESIGN.md section 2).
//
//   cairn-media enroll --server HOST:PORT --token T --ca-fingerprint F
//                      --address HOST:PORT --state-dir DIR [--name ID]
//                      [--listen HOST:PORT] [--store REPO]
//   cairn-media serve  --state-dir DIR [--store REPO] [--listen HOST:PORT]
//                      [--no-browse] [--no-catalogue] [--browse-idle S]
//                      [--browse-sandbox]
//   cairn-media store init|list|show|verify|gc|prune|consolidate --store REPO
//   cairn-media restore build --store REPO --backup B --plan PLAN.json
//                      --id NEW [--key-file K] [--work-dir DIR] [--json]
//   cairn-media export --store REPO --backup B --format raw|qcow2|vmdk|vhdx
//                      --out FILE [--key-file K] [--force] [--work-dir DIR]
//                      [--json]
//   cairn-media instant-boot --store REPO --backup B --overlay FILE
//                      [--key-file K] [--memory MiB] [--firmware bios|uefi]
//                      [--disk-bus virtio|ahci|nvme] [--nic virtio|e1000|none]
//                      [--serial FILE] [--copy-rate MiB/s] [--force] [--json]
//                      [--quiet]
//   cairn-media key generate --out FILE
//
// `serve` stops gracefully on SIGTERM or SIGINT (sigwait in the main thread,
// as cairn-server does).
#include <signal.h>
#include <string.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <iostream>

#include "common/cli.h"
#include "common/coding.h"
#include "common/env.h"
#include "common/logging.h"
#include "common/progress.h"
#include "media_agent/consolidator.h"
#include "media_agent/garbage_collector.h"
#include "media_agent/image_export.h"
#include "media_agent/instant_boot.h"
#include "media_agent/media_enrollment.h"
#include "media_agent/media_server.h"
#include "media_agent/repository.h"
#include "media_agent/restore_builder.h"
#include "media_agent/retention.h"
#include "media_agent/verifier.h"
#include "server/customization_plan.h"

namespace cairn {
namespace {

using nlohmann::json;

json ManifestJson(const Manifest& m) {
  uint64_t zero = 0;
  for (const auto& c : m.chunks) zero += c.IsZero();
  return json{{"backup_id", m.backup_id},
              {"source", m.source},
              {"kind", std::string(BackupKindName(m.kind))},
              {"parent_id", m.parent_id},
              {"created", cli::FormatTimestamp(m.created_unix_us)},
              {"created_unix_us", m.created_unix_us},
              {"image_size", m.image_size},
              {"chunk_size", m.chunk_size},
              {"chunks", m.chunks.size()},
              {"zero_chunks", zero},
              {"encrypted", m.encrypted()},
              {"key_fingerprint", HexEncode(m.key_fingerprint)},
              {"consolidated_from", m.consolidated_from}};
}

struct Common {
  std::string store;
  bool json = false;
};

int Finish(const StatusOr<json>& r, bool as_json, int exit_if_ok = 0) {
  if (!r.ok()) return cli::ReportError(r.status(), as_json);
  if (as_json) cli::PrintJson(*r);
  return exit_if_ok;
}

// `export`: the signal that asked it to stop (SIGINT, SIGTERM), or 0.
std::atomic<int> export_stop_signal{0};

void OnExportStopSignal(int signal_number) {
  export_stop_signal.store(signal_number);
}

int RunExport(Repository& repo, ImageExportOptions options,
              const std::string& key_file, bool as_json) {
  auto key_or = cli::LoadOptionalKey(key_file);
  if (!key_or.ok()) return cli::ReportError(key_or.status(), as_json);
  options.key = key_or->get();
  // Ctrl-C or SIGTERM: qemu-img is stopped and the temporary file removed.
  struct sigaction sa = {};
  sa.sa_handler = OnExportStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  options.cancelled = [] { return export_stop_signal.load() != 0; };
  std::unique_ptr<ProgressCounter> counter;
  ProgressPrinter printer("export");
  uint64_t reported = 0;
  options.progress = [&](uint64_t done, uint64_t total) {
    if (total == 0) return;
    if (counter == nullptr) counter = std::make_unique<ProgressCounter>(total);
    if (done > reported) counter->Add(done - reported);
    reported = done;
    if (!as_json) printer.Update(counter->Snapshot());
  };
  auto r = ExportImage(repo, options);
  if (counter != nullptr && !as_json && r.ok()) {
    printer.Finish(counter->Snapshot());
  }
  if (!r.ok()) {
    Status s = r.status();
    if (s.code() == absl::StatusCode::kAlreadyExists) {
      s = Status(s.code(), std::string(s.message()) + " (--force replaces it)");
    }
    int code = cli::ReportError(s, as_json);
    int sig = export_stop_signal.load();
    return s.code() == absl::StatusCode::kCancelled && sig != 0 ? 128 + sig
                                                                : code;
  }
  const double mib_s = r->bytes_per_second / (1 << 20);
  if (!as_json) {
    std::cout << "exported " << r->backup_id << " as "
              << ImageFormatName(r->format) << " to " << r->destination << ": "
              << FormatBytes(r->virtual_size) << " virtual, "
              << FormatBytes(r->file_size) << " file ("
              << FormatBytes(r->allocated_bytes) << " allocated), "
              << FormatDuration(r->seconds) << ", "
              << static_cast<int64_t>(mib_s) << " MiB/s\n";
  }
  return Finish(
      json{{"out", r->destination},
           {"backup_id", r->backup_id},
           {"format", std::string(ImageFormatName(r->format))},
           {"format_options", std::string(QemuImgCreateOptions(r->format))},
           {"virtual_size", r->virtual_size},
           {"file_size", r->file_size},
           {"allocated_bytes", r->allocated_bytes},
           {"seconds", r->seconds},
           {"export_seconds", r->export_seconds},
           {"convert_seconds", r->convert_seconds},
           {"bytes_per_second", r->bytes_per_second},
           {"mib_per_second", mib_s}},
      as_json);
}

// `instant-boot` (docs/instant-boot.md): SIGINT/SIGTERM quit the VM.
std::atomic<int> boot_stop_signal{0};

void OnBootStopSignal(int signal_number) {
  boot_stop_signal.store(signal_number);
}

int RunInstantBootCommand(InstantBootOptions options,
                          const std::string& key_file, bool as_json,
                          bool quiet) {
  // --json: every stdout line is one JSON object (events, then a summary
  // or an error).
  auto fail = [&](const Status& s) {
    if (!as_json) return cli::ReportError(s, false);
    std::cout << json{{"event", "error"},
                      {"error",
                       {{"code", absl::StatusCodeToString(s.code())},
                        {"message", std::string(s.message())}}}}
                     .dump()
              << std::endl;
    return cli::ExitCode(s);
  };
  auto key_or = cli::LoadOptionalKey(key_file);
  if (!key_or.ok()) return fail(key_or.status());
  options.key = key_or->get();
  struct sigaction sa = {};
  sa.sa_handler = OnBootStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  options.stop_requested = [] { return boot_stop_signal.load() != 0; };
  std::unique_ptr<ProgressCounter> counter;
  ProgressPrinter printer("copy");
  uint64_t reported = 0;
  bool finished = false;
  const bool show = !as_json && !quiet;
  options.progress = [&](uint64_t done, uint64_t total) {
    if (total == 0) return;
    if (counter == nullptr) counter = std::make_unique<ProgressCounter>(total);
    if (done > reported) {
      counter->Add(done - reported);
      reported = done;
    }
    if (show && !finished) {
      if (done >= total) {
        finished = true;
        printer.Finish(counter->Snapshot());
      } else {
        printer.Update(counter->Snapshot());
      }
    }
  };
  options.on_event = [&](std::string_view name, const json& details) {
    if (as_json) {
      json line = {{"event", std::string(name)}};
      line.update(details);
      std::cout << line.dump() << std::endl;
    } else if (show) {
      std::cerr << "cairn-media: " << name;
      if (!details.empty()) std::cerr << " " << details.dump();
      std::cerr << std::endl;
    }
  };
  auto r = RunInstantBoot(options);
  if (!r.ok()) {
    int code = fail(r.status());
    int sig = boot_stop_signal.load();
    return r.status().code() == absl::StatusCode::kCancelled && sig != 0
               ? 128 + sig
               : code;
  }
  if (as_json) {
    std::cout << json{{"event", "summary"},
                      {"overlay", r->overlay},
                      {"vars_file", r->vars_file},
                      {"backup_id", r->backup_id},
                      {"virtual_size", r->virtual_size},
                      {"stream_complete", r->stream_complete},
                      {"streamed_bytes", r->streamed_bytes},
                      {"stream_seconds", r->stream_seconds},
                      {"vm_seconds", r->vm_seconds},
                      {"seconds", r->seconds},
                      {"vm_end", r->vm_end}}
                     .dump()
              << std::endl;
  } else {
    std::cout << "instant boot of " << r->backup_id << ": "
              << FormatBytes(r->streamed_bytes) << " copied in "
              << FormatDuration(r->stream_seconds) << "; " << r->overlay
              << " is self-contained; VM ran " << FormatDuration(r->vm_seconds)
              << " (" << r->vm_end << ")\n";
  }
  return 0;
}

int RunServe(const MediaServerOptions& options) {
  // Block the stop signals before any thread starts, so only sigwait() below
  // receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto server = MediaServer::Start(options);
  if (!server.ok()) return cli::ReportError(server.status(), false);
  std::cerr << "cairn-media: " << (*server)->config().identity
            << " serving on port " << (*server)->port() << std::endl;
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  std::cerr << "cairn-media: " << strsignal(signal_number) << ", shutting down"
            << std::endl;
  if (Status s = (*server)->Shutdown(); !s.ok()) {
    return cli::ReportError(s, false);
  }
  return 0;
}

}  // namespace
}  // namespace cairn

int main(int argc, char** argv) {
  using namespace cairn;
  CLI::App app{
      "cairn-media: Cairn media agent (data path service and chunk "
      "store administration)"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  Common c;
  auto add_common = [&](CLI::App* cmd) {
    cmd->add_option("--store", c.store, "Repository directory")->required();
    cmd->add_flag("--json", c.json, "Machine-readable output");
  };

  auto* store = app.add_subcommand("store", "Repository administration");
  store->require_subcommand(1);
  auto* init = store->add_subcommand("init", "Create an empty repository");
  add_common(init);
  auto* list = store->add_subcommand("list", "List backups");
  add_common(list);
  auto* show = store->add_subcommand("show", "Show one backup's manifest");
  add_common(show);
  std::string show_id;
  show->add_option("--backup", show_id, "Backup id")->required();

  auto* verify = store->add_subcommand(
      "verify",
      "Check every chunk the backups reference; exit 1 if any is damaged");
  add_common(verify);
  std::vector<std::string> verify_ids;
  std::string verify_key;
  int verify_threads = 2;
  verify->add_option("--backup", verify_ids, "Only these backups (repeatable)");
  verify->add_option("--key-file", verify_key,
                     "Data key: also check GCM tags and ids");
  verify->add_option("--threads", verify_threads,
                     "Parallel readers (default 2)");

  auto* gc = store->add_subcommand("gc", "Remove chunks no backup references");
  add_common(gc);
  bool gc_dry = false;
  gc->add_flag("--dry-run", gc_dry,
               "Report what would be removed, remove nothing");

  auto* prune = store->add_subcommand(
      "prune", "Remove backups a retention policy does not keep");
  add_common(prune);
  PruneOptions prune_opts;
  prune->add_option("--keep-last", prune_opts.policy.keep_last,
                    "Keep the N newest");
  prune->add_option("--keep-hourly", prune_opts.policy.keep_hourly,
                    "Keep one per hour for N hours");
  prune->add_option("--keep-daily", prune_opts.policy.keep_daily,
                    "Keep one per day for N days");
  prune->add_option("--keep-weekly", prune_opts.policy.keep_weekly,
                    "Keep one per week for N weeks");
  prune->add_option("--keep-monthly", prune_opts.policy.keep_monthly,
                    "Keep one per month for N months");
  prune->add_option("--keep-yearly", prune_opts.policy.keep_yearly,
                    "Keep one per year for N years");
  prune->add_option("--source", prune_opts.source,
                    "Only backups of this source");
  prune->add_flag("--dry-run", prune_opts.dry_run,
                  "List what would go, remove nothing");

  auto* consolidate =
      store->add_subcommand("consolidate",
                            "Merge a full and its incrementals into a "
                            "synthetic full (no chunk is read)");
  add_common(consolidate);
  ConsolidateOptions cons;
  std::string cons_key;
  consolidate->add_option("--backup", cons.tip_id, "Newest backup of the chain")
      ->required();
  consolidate->add_option("--id", cons.new_id,
                          "Id of the synthetic full (default <backup>.full)");
  consolidate->add_option("--key-file", cons_key,
                          "Data key (to sign an encrypted chain)");
  consolidate->add_flag("--retire", cons.retire_chain,
                        "Delete the chain's manifests afterwards");

  auto* enroll = app.add_subcommand(
      "enroll",
      "Enroll this media agent with cairn-server (one-time token, role media)");
  MediaEnrollOptions eo;
  bool enroll_json = false;
  enroll->add_option("--server", eo.server, "cairn-server host:port")
      ->required();
  enroll
      ->add_option("--token", eo.token,
                   "One-time token (cairnctl token create --role media)")
      ->required();
  enroll
      ->add_option("--ca-fingerprint", eo.ca_fingerprint,
                   "SHA-256 of the Cairn CA (printed by cairn-server init)")
      ->required();
  enroll
      ->add_option("--address", eo.address,
                   "host:port agents dial for the data path (certified)")
      ->required();
  enroll
      ->add_option("--state-dir", eo.state_dir,
                   "Where the identity and media.yaml are written")
      ->required();
  enroll->add_option("--name", eo.name, "Media agent id (default: host name)");
  enroll->add_option("--listen", eo.listen,
                     "host:port to listen on (default: --address)");
  enroll->add_option("--store", eo.store, "Chunk store directory to serve");
  enroll->add_flag("--json", enroll_json, "Machine-readable output");

  auto* serve = app.add_subcommand(
      "serve", "Serve the data path to agents (mutual TLS 1.3)");
  MediaServerOptions so;
  serve->add_option("--state-dir", so.state_dir, "From cairn-media enroll")
      ->required();
  serve->add_option("--store", so.store,
                    "Chunk store directory (overrides media.yaml)");
  serve->add_option("--listen", so.listen,
                    "host:port to listen on (overrides media.yaml)");
  bool no_browse = false, no_catalogue = false, browse_sandbox = false;
  serve->add_flag("--browse-sandbox", browse_sandbox,
                  "Browse backups inside a libguestfs appliance instead of "
                  "mounting them on this host");
  int browse_idle_s = 300;
  serve->add_flag("--no-browse", no_browse,
                  "Do not serve file-level browse (docs/browse.md)");
  serve->add_flag("--no-catalogue", no_catalogue,
                  "Do not record file catalogues after backups");
  serve
      ->add_option("--browse-idle", browse_idle_s,
                   "Seconds before an unused browse mount is stopped "
                   "(default 300)")
      ->check(CLI::Range(1, 86400));

  auto* restore = app.add_subcommand(
      "restore", "Restore builds: customized bootable images of backups");
  restore->require_subcommand(1);
  auto* build = restore->add_subcommand(
      "build",
      "Make a customized image of a backup for a target machine, from a plan "
      "(`cairn-profile plan --out`), and store it next to the backup "
      "(docs/restore-build.md)");
  add_common(build);
  RestoreBuildOptions rb;
  std::string rb_plan, rb_key;
  build->add_option("--backup", rb.backup_id, "Backup to customize")
      ->required();
  build->add_option("--plan", rb_plan, "Plan file (JSON)")->required();
  build->add_option("--id", rb.new_id, "Id of the customized image")
      ->required();
  build->add_option("--key-file", rb_key,
                    "Data key file (for an encrypted backup)");
  build->add_option("--work-dir", rb.work_parent,
                    "Where the overlay is kept during the build (default "
                    "$TMPDIR or /tmp)");

  auto* export_cmd = app.add_subcommand(
      "export",
      "Write a backup or customized image as a disk image file for a "
      "hypervisor: raw, qcow2 (compat=1.1), vmdk (streamOptimized) or vhdx "
      "(dynamic), through qemu-img reading its NBD export "
      "(docs/export.md)");
  add_common(export_cmd);
  ImageExportOptions ex;
  std::string ex_key;
  export_cmd
      ->add_option("--backup", ex.backup_id,
                   "Backup or customized image to export")
      ->required();
  export_cmd->add_option("--format", ex.format, "raw, qcow2, vmdk or vhdx")
      ->required();
  export_cmd
      ->add_option("--out", ex.destination,
                   "Image file to write (written under a temporary name in "
                   "the same directory, then renamed; mode 0600)")
      ->required();
  export_cmd->add_option("--key-file", ex_key,
                         "Data key file (for an encrypted backup)");
  export_cmd->add_flag("--force", ex.overwrite,
                       "Replace --out if it exists (default: refuse)");
  export_cmd->add_option(
      "--work-dir", ex.work_parent,
      "Where nbdkit's socket and logs are kept during the export "
      "(default $TMPDIR or /tmp; holds no image data)");

  auto* boot_cmd = app.add_subcommand(
      "instant-boot",
      "Start a VM straight from a backup's NBD export with a local qcow2 "
      "overlay while QEMU copies the backup into the overlay; once the copy "
      "is done the VM runs from the overlay alone. Waits until the VM is "
      "over (docs/instant-boot.md)");
  add_common(boot_cmd);
  InstantBootOptions ib;
  std::string ib_key;
  bool ib_quiet = false;
  boot_cmd->add_option("--backup", ib.backup_id, "Backup or customized image")
      ->required();
  boot_cmd
      ->add_option("--overlay", ib.overlay,
                   "qcow2 overlay to create: the VM's disk, self-contained "
                   "once the copy is done (mode 0600)")
      ->required();
  boot_cmd->add_option("--key-file", ib_key,
                       "Data key file (for an encrypted backup)");
  boot_cmd->add_option("--memory", ib.memory_mib, "Guest memory, MiB")
      ->capture_default_str();
  boot_cmd->add_option("--cpus", ib.cpus, "Guest CPUs")->capture_default_str();
  boot_cmd->add_option("--firmware", ib.firmware, "bios or uefi (OVMF)")
      ->capture_default_str();
  boot_cmd->add_option("--disk-bus", ib.disk_bus, "virtio, ahci or nvme")
      ->capture_default_str();
  boot_cmd
      ->add_option("--nic", ib.nic,
                   "virtio, e1000 or none (QEMU user networking)")
      ->capture_default_str();
  uint64_t ib_rate_mib = 0;
  boot_cmd->add_option("--copy-rate", ib_rate_mib,
                       "Limit the background copy to this many MiB/s "
                       "(default: no limit)");
  boot_cmd->add_option("--serial", ib.serial_log,
                       "Write the guest's serial console (ttyS0) to FILE");
  boot_cmd->add_flag("--force", ib.overwrite,
                     "Replace --overlay if it exists (default: refuse)");
  boot_cmd->add_flag("--quiet", ib_quiet,
                     "No progress or milestone lines on stderr");
  boot_cmd->add_option("--work-dir", ib.runtime_dir,
                       "Where the NBD and QMP sockets and logs are kept "
                       "(default $TMPDIR or /tmp; holds no disk data)");

  auto* key = app.add_subcommand("key", "Data keys");
  key->require_subcommand(1);
  auto* keygen = key->add_subcommand(
      "generate", "Write a new random data key file (mode 0600)");
  std::string key_out;
  bool key_json = false;
  keygen->add_option("--out", key_out, "Key file to create")->required();
  keygen->add_flag("--json", key_json, "Machine-readable output");

  CLI11_PARSE(app, argc, argv);
  if (Status s = InitLogging("cairn-media", log_level); !s.ok()) {
    return cli::ReportError(s, false);
  }

  if (serve->parsed()) {
    so.browse = !no_browse;
    so.catalogue_after_backup = !no_catalogue;
    so.browse_sandbox = browse_sandbox;
    so.browse_idle_timeout = std::chrono::seconds(browse_idle_s);
    return RunServe(so);
  }
  if (enroll->parsed()) {
    auto config = EnrollMedia(eo);
    if (!config.ok()) return cli::ReportError(config.status(), enroll_json);
    if (enroll_json) {
      cli::PrintJson({{"identity", config->identity},
                      {"address", config->address},
                      {"listen", config->listen},
                      {"store", config->store},
                      {"state_dir", eo.state_dir}});
    } else {
      std::cout << "enrolled as media agent '" << config->identity
                << "'; start it with: cairn-media serve --state-dir "
                << eo.state_dir << "\n";
    }
    return 0;
  }
  if (keygen->parsed()) {
    if (Env::Default()->FileExists(key_out).value_or(false)) {
      return cli::ReportError(
          absl::AlreadyExistsError(key_out + " already exists"), key_json);
    }
    DataKey k = DataKey::Generate();
    if (Status s = k.SaveToFile(key_out); !s.ok())
      return cli::ReportError(s, key_json);
    if (key_json) {
      cli::PrintJson(
          {{"key_file", key_out}, {"fingerprint", k.FingerprintHex()}});
    } else {
      std::cout << "wrote " << key_out << " (fingerprint " << k.FingerprintHex()
                << ")\n";
    }
    return 0;
  }

  // instant-boot does not open the store itself: its nbdkit holds the store
  // lock for as long as the export runs.
  if (boot_cmd->parsed()) {
    ib.store = c.store;
    ib.copy_bytes_per_second = ib_rate_mib << 20;
    return RunInstantBootCommand(ib, ib_key, c.json, ib_quiet);
  }

  RepositoryOptions ropts;
  ropts.create_if_missing = init->parsed();
  auto repo_or = Repository::Open(c.store, ropts);
  if (!repo_or.ok()) return cli::ReportError(repo_or.status(), c.json);
  Repository* repo = repo_or->get();

  if (init->parsed()) {
    if (!c.json) std::cout << "repository ready at " << c.store << "\n";
    return Finish(json{{"store", c.store}}, c.json);
  }
  if (list->parsed()) {
    auto r = [&]() -> StatusOr<json> {
      CAIRN_ASSIGN_OR_RETURN(auto ids, repo->manifests().List());
      json arr = json::array();
      for (const auto& id : ids) {
        auto m = repo->LoadManifest(id, nullptr);
        if (!m.ok()) {
          arr.push_back({{"backup_id", id},
                         {"error", std::string(m.status().message())}});
          if (!c.json)
            std::cout << id << "  DAMAGED: " << m.status().message() << "\n";
          continue;
        }
        arr.push_back(ManifestJson(*m));
        if (!c.json) {
          std::cout << m->backup_id << "  "
                    << cli::FormatTimestamp(m->created_unix_us) << "  "
                    << BackupKindName(m->kind) << "  "
                    << FormatBytes(m->image_size) << "  " << m->source
                    << (m->encrypted() ? "  encrypted" : "") << "\n";
        }
      }
      return json{{"backups", arr}};
    }();
    return Finish(r, c.json);
  }
  if (show->parsed()) {
    auto m = repo->LoadManifest(show_id, nullptr);
    if (!m.ok()) return cli::ReportError(m.status(), c.json);
    json j = ManifestJson(*m);
    if (!c.json) std::cout << j.dump(2) << "\n";
    return Finish(j, c.json);
  }
  if (verify->parsed()) {
    auto key_or = cli::LoadOptionalKey(verify_key);
    if (!key_or.ok()) return cli::ReportError(key_or.status(), c.json);
    VerifyOptions vo;
    vo.backup_ids = verify_ids;
    vo.key = key_or->get();
    vo.threads = verify_threads;
    auto report = VerifyRepository(repo, vo);
    if (!report.ok()) return cli::ReportError(report.status(), c.json);
    json bad = json::array();
    for (const auto& b : report->bad_chunks) {
      bad.push_back({{"chunk", b.id.ToHex()},
                     {"path", b.path},
                     {"error", b.error},
                     {"affected_backups", b.affected_backups}});
      if (!c.json) {
        std::cout << "BAD chunk " << b.id.ToHex() << " (" << b.path
                  << "): " << b.error << "\n    affects:";
        for (const auto& id : b.affected_backups) std::cout << " " << id;
        std::cout << "\n";
      }
    }
    json bad_manifests = json::array();
    for (const auto& b : report->bad_manifests) {
      bad_manifests.push_back({{"backup_id", b.backup_id}, {"error", b.error}});
      if (!c.json)
        std::cout << "BAD manifest " << b.backup_id << ": " << b.error << "\n";
    }
    json j{{"ok", report->ok()},
           {"backups_checked", report->backups_checked},
           {"chunks_checked", report->chunks_checked},
           {"chunks_deep_checked", report->chunks_deep_checked},
           {"stored_bytes_checked", report->stored_bytes_checked},
           {"bad_chunks", bad},
           {"bad_manifests", bad_manifests},
           {"damaged_backups", report->damaged_backups}};
    if (!c.json) {
      std::cout << (report->ok() ? "OK: " : "DAMAGED: ")
                << report->backups_checked << " backups, "
                << report->chunks_checked << " chunks ("
                << report->chunks_deep_checked << " decoded and re-hashed), "
                << report->damaged_backups.size() << " backups damaged\n";
    }
    return Finish(j, c.json, report->ok() ? 0 : 1);
  }
  if (gc->parsed()) {
    GcOptions go;
    go.dry_run = gc_dry;
    auto r = CollectGarbage(repo, go);
    if (!r.ok()) return cli::ReportError(r.status(), c.json);
    if (!c.json) {
      std::cout << (gc_dry ? "would remove " : "removed ") << r->chunks_removed
                << " of " << r->chunks_scanned << " chunks ("
                << FormatBytes(r->bytes_removed) << "); "
                << r->chunks_referenced << " referenced by "
                << r->manifests_marked << " backups\n";
    }
    return Finish(json{{"dry_run", gc_dry},
                       {"manifests_marked", r->manifests_marked},
                       {"chunks_referenced", r->chunks_referenced},
                       {"chunks_scanned", r->chunks_scanned},
                       {"chunks_removed", r->chunks_removed},
                       {"bytes_removed", r->bytes_removed},
                       {"chunks_kept_in_flight", r->chunks_kept_in_flight}},
                  c.json);
  }
  if (prune->parsed()) {
    auto r = Prune(repo, prune_opts);
    if (!r.ok()) return cli::ReportError(r.status(), c.json);
    json arr = json::array();
    for (const auto& d : r->decisions) {
      arr.push_back(
          {{"backup_id", d.backup.backup_id},
           {"source", d.backup.source},
           {"created", cli::FormatTimestamp(d.backup.created_unix_us)},
           {"keep", d.keep},
           {"reasons", d.reasons}});
      if (!c.json) {
        std::cout << (d.keep
                          ? "keep   "
                          : (prune_opts.dry_run ? "would remove " : "remove "))
                  << d.backup.backup_id << "  "
                  << cli::FormatTimestamp(d.backup.created_unix_us);
        for (const auto& reason : d.reasons)
          std::cout << "  [" << reason << "]";
        std::cout << "\n";
      }
    }
    return Finish(json{{"dry_run", prune_opts.dry_run},
                       {"removed", r->removed},
                       {"decisions", arr}},
                  c.json);
  }
  if (build->parsed()) {
    auto key_or = cli::LoadOptionalKey(rb_key);
    if (!key_or.ok()) return cli::ReportError(key_or.status(), c.json);
    rb.key = key_or->get();
    std::string text;
    if (Status s = Env::Default()->ReadFileToString(rb_plan, &text); !s.ok()) {
      return cli::ReportError(s, c.json);
    }
    auto plan = CustomizationPlanFromJson(text);
    if (!plan.ok()) return cli::ReportError(plan.status(), c.json);
    rb.plan = *std::move(plan);
    std::unique_ptr<ProgressCounter> counter;
    ProgressPrinter printer("commit");
    uint64_t reported = 0;
    rb.progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
      if (phase == "commit" && total > 0) {
        if (counter == nullptr)
          counter = std::make_unique<ProgressCounter>(total);
        counter->Add(done - reported);
        reported = done;
        if (!c.json) printer.Update(counter->Snapshot());
      } else if (!c.json) {
        std::cerr << "cairn-media: " << phase << "\n";
      }
    };
    auto r = BuildCustomizedImage(*repo, rb);
    if (counter != nullptr && !c.json) printer.Finish(counter->Snapshot());
    if (!r.ok()) return cli::ReportError(r.status(), c.json);
    json steps = json::array();
    for (const auto& st : r->report.steps()) {
      steps.push_back({{"step", st.step()},
                       {"detail", st.detail()},
                       {"seconds", st.seconds()}});
      if (!c.json) {
        std::cout << "  " << st.step() << ": " << st.detail() << "\n";
      }
    }
    const DerivedImageStats& st = r->stats;
    if (!c.json) {
      std::cout << "customized image " << r->manifest.backup_id << " of "
                << rb.backup_id << ": " << st.chunks << " chunks, "
                << st.chunks_reused << " shared with the backup, "
                << st.chunks_new << " new (" << st.new_stored_bytes
                << " bytes stored)\n";
    }
    return Finish(json{{"image_id", r->manifest.backup_id},
                       {"backup_id", rb.backup_id},
                       {"image_size", st.image_size},
                       {"chunks", st.chunks},
                       {"chunks_reused", st.chunks_reused},
                       {"chunks_read", st.chunks_read},
                       {"chunks_new", st.chunks_new},
                       {"chunks_zero", st.chunks_zero},
                       {"new_stored_bytes", st.new_stored_bytes},
                       {"steps", steps},
                       {"changed_files", std::vector<std::string>(
                                             r->report.changed_files().begin(),
                                             r->report.changed_files().end())},
                       {"seconds",
                        {{"export", r->export_seconds},
                         {"launch", r->report.launch_seconds()},
                         {"edits", r->report.edit_seconds()},
                         {"initramfs", r->report.initramfs_seconds()},
                         {"shutdown", r->report.shutdown_seconds()},
                         {"customize", r->customize_seconds},
                         {"commit", r->commit_seconds}}}},
                  c.json);
  }
  if (export_cmd->parsed()) return RunExport(*repo, ex, ex_key, c.json);
  if (consolidate->parsed()) {
    auto key_or = cli::LoadOptionalKey(cons_key);
    if (!key_or.ok()) return cli::ReportError(key_or.status(), c.json);
    cons.key = key_or->get();
    auto r = Consolidate(repo, cons);
    if (!r.ok()) return cli::ReportError(r.status(), c.json);
    if (!c.json) {
      std::cout << "synthetic full " << r->manifest.backup_id << " made from "
                << r->chain.size() << " backups"
                << (r->retired.empty() ? "" : "; chain retired") << "\n";
    }
    return Finish(json{{"backup_id", r->manifest.backup_id},
                       {"chain", r->chain},
                       {"retired", r->retired}},
                  c.json);
  }
  return 2;
}
