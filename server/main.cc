// cairn-server: the storage manager daemon (DESIGN.md section 2).
//
//   cairn-server init --dir DIR [--name HOST]... [--encrypt] [--json]
//   cairn-server run  --dir DIR [--listen HOST:PORT] [--embedded-media
//                     --store REPO] [--media-address HOST:PORT]
//                     [--reconnect-grace SECONDS] [--no-catalogue]
//                     [--browse-sandbox]
//                     [--config FILE] [--log-level LEVEL]
//
// `run` stops gracefully on SIGTERM or SIGINT: the signals are blocked in
// every thread and the main thread waits for them with sigwait(), then shuts
// the server down (server/storage_manager.h).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "common/cli.h"
#include "common/logging.h"
#include "common/strings.h"
#include "server/server_config.h"
#include "server/server_home.h"
#include "server/storage_manager.h"

namespace cairn {
namespace {

int RunInit(const InitOptions& options, bool json) {
  auto report = InitServerHome(options);
  if (!report.ok()) return cli::ReportError(report.status(), json);
  if (json) {
    cli::PrintJson({{"dir", options.dir},
                    {"ca_fingerprint", report->ca_fingerprint},
                    {"admin_cred_dir", report->admin_cred_dir},
                    {"data_key_file", report->data_key_file},
                    {"data_key_fingerprint", report->data_key_fingerprint}});
  } else {
    std::cout << "cairn-server initialized in " << options.dir << "\n"
              << "CA fingerprint: " << report->ca_fingerprint << "\n"
              << "admin credential: " << report->admin_cred_dir
              << "  (cairnctl --cred-dir " << report->admin_cred_dir << ")\n";
    if (!report->data_key_file.empty()) {
      std::cout << "data key: " << report->data_key_file << " (fingerprint "
                << report->data_key_fingerprint << "); keep a copy offline\n";
    }
    std::cout << "Give agents the CA fingerprint with their enrollment "
                 "token.\n";
  }
  return 0;
}

int RunServer(const StorageManagerOptions& options) {
  // Block the stop signals before any thread starts, so only sigwait() below
  // receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto server = StorageManager::Start(options);
  if (!server.ok()) return cli::ReportError(server.status(), false);
  std::cerr << "cairn-server: serving on port " << (*server)->port()
            << std::endl;
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  std::cerr << "cairn-server: " << strsignal(signal_number) << ", shutting down"
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
  CLI::App app{"cairn-server: Cairn storage manager"};
  app.require_subcommand(1);
  std::string log_level;
  app.add_option("--log-level", log_level,
                 "trace|debug|info|warn|error (default info for run, warn "
                 "for init)");

  auto* init =
      app.add_subcommand("init",
                         "Create the CA, the server certificate, a first admin "
                         "credential and the catalog in a new directory");
  InitOptions init_options;
  bool init_json = false;
  init->add_option("--dir", init_options.dir, "State directory to create")
      ->required();
  init->add_option("--name", init_options.names,
                   "Host name or IP address agents use to reach the server "
                   "(repeatable; localhost and 127.0.0.1 are always valid)");
  init->add_flag("--encrypt", init_options.encrypt,
                 "Create the default policy's data key: backups are "
                 "encrypted");
  init->add_flag("--json", init_json, "Machine-readable output");

  auto* run = app.add_subcommand("run", "Serve agents, media and cairnctl");
  ServerConfig config;
  std::string config_file;
  StorageManagerOptions flags;
  run->add_option("--config", config_file, "YAML configuration file");
  auto* dir_opt = run->add_option("--dir", flags.dir, "State directory");
  auto* listen_opt = run->add_option("--listen", flags.listen,
                                     "host:port to listen on (default "
                                     "127.0.0.1:7443)");
  auto* embedded_opt = run->add_flag(
      "--embedded-media", flags.embedded_media,
      "Host a media agent in this process (media id \"embedded\")");
  auto* store_opt = run->add_option("--store", flags.store,
                                    "Embedded media: repository directory");
  auto* media_addr_opt = run->add_option(
      "--media-address", flags.media_address,
      "Embedded media: address agents dial for the data path (default: the "
      "server's own address)");
  int reconnect_grace_s = 60;
  auto* grace_opt =
      run->add_option("--reconnect-grace", reconnect_grace_s,
                      "Seconds a running job waits for its agent to "
                      "reconnect before it fails (default 60)")
          ->check(CLI::Range(0, 86400));

  bool browse_sandbox = false;
  run->add_flag("--browse-sandbox", browse_sandbox,
                "Embedded media: browse backups inside a libguestfs "
                "appliance instead of mounting them on this host");
  bool no_catalogue = false;
  run->add_flag("--no-catalogue", no_catalogue,
                "Embedded media: do not record file catalogues after backups "
                "(browse then reads a fresh backup from a live mount)");

  CLI11_PARSE(app, argc, argv);

  if (init->parsed()) {
    if (Status s =
            InitLogging("cairn-server", log_level.empty() ? "warn" : log_level);
        !s.ok()) {
      return cli::ReportError(s, init_json);
    }
    return RunInit(init_options, init_json);
  }

  if (!config_file.empty()) {
    if (Status s = LoadServerConfig(config_file, &config); !s.ok()) {
      return cli::ReportError(s, false);
    }
  }
  StorageManagerOptions& o = config.run;
  if (dir_opt->count()) o.dir = flags.dir;
  if (listen_opt->count()) o.listen = flags.listen;
  if (embedded_opt->count()) o.embedded_media = true;
  if (store_opt->count()) o.store = flags.store;
  if (grace_opt->count()) {
    o.reconnect_grace = std::chrono::seconds(reconnect_grace_s);
  }
  if (media_addr_opt->count()) o.media_address = flags.media_address;
  if (no_catalogue) o.catalogue_after_backup = false;
  if (browse_sandbox) o.browse_sandbox = true;
  if (!log_level.empty()) config.log_level = log_level;
  if (Status s = InitLogging("cairn-server", config.log_level); !s.ok()) {
    return cli::ReportError(s, false);
  }
  if (o.dir.empty()) {
    return cli::ReportError(
        absl::InvalidArgumentError("--dir (or dir: in --config) is required"),
        false);
  }
  return RunServer(o);
}
