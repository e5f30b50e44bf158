// cairn-agent: the client agent.
//   enroll   get this machine's identity from cairn-server (one-time token)
//   run      the daemon: command stream to cairn-server, backups, restores
//   backup   back up into a local repository (embedded single-machine mode)
//   restore  restore from a local repository
#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

#include "agent/agent_daemon.h"
#include "agent/backup_pipeline.h"
#include "agent/enrollment.h"
#include "agent/image_restore.h"
#include "common/cli.h"
#include "common/config.h"
#include "common/image_reader.h"
#include "common/logging.h"
#include "common/progress.h"
#include "media_agent/repository.h"

namespace cairn {
namespace {

// Runs `op` while a ProgressPrinter reports `counter` on stderr.
template <typename Op>
auto WithProgress(const std::string& label, ProgressCounter* counter,
                  bool quiet, Op op) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  ProgressPrinter printer(label);
  std::thread ticker([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, std::chrono::milliseconds(200),
                        [&] { return done; })) {
      if (!quiet) printer.Update(counter->Snapshot());
    }
  });
  auto result = op();
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
  ticker.join();
  if (!quiet && result.ok()) printer.Finish(counter->Snapshot());
  return result;
}

// The newest backup of `source` in the repository, for --incremental.
StatusOr<std::string> LatestBackupOf(Repository* repo,
                                     const std::string& source) {
  CAIRN_ASSIGN_OR_RETURN(auto ids, repo->manifests().List());
  std::string best;
  int64_t best_time = INT64_MIN;
  for (const auto& id : ids) {
    CAIRN_ASSIGN_OR_RETURN(Manifest m, repo->LoadManifest(id, nullptr));
    if (m.source == source && m.created_unix_us > best_time) {
      best = id;
      best_time = m.created_unix_us;
    }
  }
  if (best.empty()) {
    return absl::NotFoundError("no earlier backup of '" + source +
                               "' to base an incremental on");
  }
  return best;
}

struct BackupArgs {
  std::string store, source, name, id, parent, key_file, chunk_size = "4MiB";
  int zstd_level = 1, threads = 0;
  bool incremental = false, force_read = false, json = false, quiet = false;
};

int RunBackupCommand(const BackupArgs& a) {
  auto run = [&]() -> StatusOr<nlohmann::json> {
    CAIRN_ASSIGN_OR_RETURN(uint64_t chunk_size, ParseByteSize(a.chunk_size));
    CAIRN_RETURN_IF_ERROR(ValidateChunkSize(chunk_size));
    CAIRN_ASSIGN_OR_RETURN(auto key, cli::LoadOptionalKey(a.key_file));
    CAIRN_ASSIGN_OR_RETURN(auto repo, Repository::Open(a.store, {}));
    BackupRequest req;
    req.source_path = a.source;
    req.source_name = a.name.empty() ? a.source : a.name;
    req.backup_id = a.id;
    std::string parent_id = a.parent;
    if (a.incremental && parent_id.empty()) {
      CAIRN_ASSIGN_OR_RETURN(parent_id,
                             LatestBackupOf(repo.get(), req.source_name));
    }
    Manifest parent;
    if (!parent_id.empty()) {
      // With the key, the parent's signature is checked before it is trusted.
      CAIRN_ASSIGN_OR_RETURN(parent, repo->LoadManifest(parent_id, key.get()));
      req.parent = &parent;
    }
    req.force_read = a.force_read;
    req.chunk_size = static_cast<uint32_t>(chunk_size);
    req.zstd_level = a.zstd_level;
    req.key = key.get();
    req.threads = a.threads;
    CAIRN_ASSIGN_OR_RETURN(auto src,
                           Env::Default()->NewRandomAccessFile(a.source));
    CAIRN_ASSIGN_OR_RETURN(uint64_t size, src->Size());
    ProgressCounter progress(size);
    req.progress = &progress;
    auto session = repo->BeginBackup();
    CAIRN_ASSIGN_OR_RETURN(
        BackupResult r,
        WithProgress("backup", &progress, a.quiet || a.json,
                     [&] { return RunBackup(req, session.get()); }));
    const BackupStats& s = r.stats;
    return nlohmann::json{
        {"backup_id", r.manifest.backup_id},
        {"source", r.manifest.source},
        {"kind", std::string(BackupKindName(r.manifest.kind))},
        {"parent_id", r.manifest.parent_id},
        {"image_size", s.image_size},
        {"chunk_size", r.manifest.chunk_size},
        {"chunks_total", s.chunks_total},
        {"chunks_zero", s.chunks_zero},
        {"chunks_new", s.chunks_new},
        {"chunks_deduplicated", s.chunks_present},
        {"new_plain_bytes", s.new_plain_bytes},
        {"new_stored_bytes", s.new_stored_bytes},
        {"encrypted", r.manifest.encrypted()},
        {"source_unchanged", s.source_unchanged},
        {"seconds", s.seconds},
        {"bytes_per_second", s.seconds > 0 ? s.image_size / s.seconds : 0}};
  };
  auto result = run();
  if (!result.ok()) return cli::ReportError(result.status(), a.json);
  const auto& j = *result;
  if (a.json) {
    cli::PrintJson(j);
  } else {
    std::cout << "backup " << j["backup_id"].get<std::string>() << " ("
              << j["kind"].get<std::string>()
              << ") committed: " << FormatBytes(j["image_size"]) << " image, "
              << j["chunks_new"] << " new chunks ("
              << FormatBytes(j["new_stored_bytes"]) << " stored), "
              << j["chunks_deduplicated"] << " deduplicated, "
              << j["chunks_zero"] << " zero\n";
  }
  return 0;
}

struct RestoreArgs {
  std::string store, backup, target, key_file;
  int threads = 0;
  bool json = false, quiet = false;
};

int RunRestoreCommand(const RestoreArgs& a) {
  auto run = [&]() -> StatusOr<nlohmann::json> {
    CAIRN_ASSIGN_OR_RETURN(auto key, cli::LoadOptionalKey(a.key_file));
    CAIRN_ASSIGN_OR_RETURN(auto repo, Repository::Open(a.store, {}));
    CAIRN_ASSIGN_OR_RETURN(auto reader,
                           ImageReader::Open(repo.get(), a.backup, key.get()));
    ProgressCounter progress(reader->size());
    RestoreOptions opts;
    opts.threads = a.threads;
    opts.progress = &progress;
    CAIRN_ASSIGN_OR_RETURN(
        RestoreStats s,
        WithProgress("restore", &progress, a.quiet || a.json, [&] {
          return RestoreImage(reader.get(), a.target, opts);
        }));
    return nlohmann::json{
        {"backup_id", a.backup},        {"target", a.target},
        {"image_size", s.image_size},   {"chunks_written", s.chunks_written},
        {"chunks_zero", s.chunks_zero}, {"seconds", s.seconds}};
  };
  auto result = run();
  if (!result.ok()) return cli::ReportError(result.status(), a.json);
  if (a.json) {
    cli::PrintJson(*result);
  } else {
    std::cout << "restored " << a.backup << " to " << a.target << " ("
              << FormatBytes((*result)["image_size"]) << ")\n";
  }
  return 0;
}

struct EnrollArgs {
  std::string server, token, fingerprint, name, state_dir;
  int timeout_seconds = 30;
  bool json = false;
};

int RunEnrollCommand(const EnrollArgs& a) {
  EnrollOptions o;
  o.server = a.server;
  o.token = a.token;
  o.ca_fingerprint = a.fingerprint;
  o.name = a.name;
  o.state_dir = a.state_dir;
  o.timeout = std::chrono::seconds(a.timeout_seconds);
  auto config = EnrollAgent(o);
  if (!config.ok()) return cli::ReportError(config.status(), a.json);
  if (a.json) {
    cli::PrintJson({{"identity", config->identity},
                    {"server", config->server},
                    {"state_dir", a.state_dir}});
  } else {
    std::cout << "enrolled as " << config->identity << " with "
              << config->server << "; identity written to " << a.state_dir
              << "\nstart the agent with: cairn-agent run --state-dir "
              << a.state_dir << "\n";
  }
  return 0;
}

struct RunArgs {
  std::string state_dir;
  int heartbeat_seconds = 0, reconnect_max_seconds = 0, threads = -1;
};

int RunDaemonCommand(const RunArgs& a) {
  AgentDaemonOptions o;
  o.state_dir = a.state_dir;
  if (a.heartbeat_seconds > 0) {
    o.heartbeat_interval = std::chrono::seconds(a.heartbeat_seconds);
  }
  if (a.reconnect_max_seconds > 0) {
    o.reconnect_max_delay = std::chrono::seconds(a.reconnect_max_seconds);
  }
  if (a.threads >= 0) o.threads = a.threads;
  Status s = RunAgentDaemon(o);
  if (!s.ok()) return cli::ReportError(s, false);
  return 0;
}

// Fills settings the command line left unset from a YAML file. Flags win.
Status ApplyConfig(const std::string& path, bool log_level_given,
                   std::string* log_level, BackupArgs* b, RestoreArgs* r,
                   bool is_backup, bool is_restore) {
  CAIRN_ASSIGN_OR_RETURN(ConfigReader config, ConfigReader::LoadFile(path));
  CAIRN_ASSIGN_OR_RETURN(std::string store, config.GetString("store", ""));
  CAIRN_ASSIGN_OR_RETURN(std::string key_file,
                         config.GetString("key_file", ""));
  CAIRN_ASSIGN_OR_RETURN(std::string level,
                         config.GetString("log_level", *log_level));
  CAIRN_ASSIGN_OR_RETURN(ConfigReader backup, config.GetSection("backup"));
  CAIRN_ASSIGN_OR_RETURN(std::string name, backup.GetString("name", b->name));
  CAIRN_ASSIGN_OR_RETURN(uint64_t chunk_size, backup.GetSize("chunk_size", 0));
  CAIRN_ASSIGN_OR_RETURN(int64_t zstd_level,
                         backup.GetInt("zstd_level", b->zstd_level));
  CAIRN_ASSIGN_OR_RETURN(int64_t threads, backup.GetInt("threads", b->threads));
  CAIRN_RETURN_IF_ERROR(backup.Finish());
  CAIRN_RETURN_IF_ERROR(config.Finish());
  if (chunk_size != 0 && !ValidateChunkSize(chunk_size).ok()) {
    return config.ErrorAt(
        "backup", "chunk_size must be a power of two from 64KiB to 16MiB");
  }
  if (!log_level_given) *log_level = level;
  auto fill = [](std::string* field, const std::string& value) {
    if (field->empty()) *field = value;
  };
  if (is_backup) {
    fill(&b->store, store);
    fill(&b->key_file, key_file);
    fill(&b->name, name);
    if (chunk_size != 0 && b->chunk_size == "4MiB")
      b->chunk_size = std::to_string(chunk_size);
    if (b->zstd_level == 1) b->zstd_level = static_cast<int>(zstd_level);
    if (b->threads == 0) b->threads = static_cast<int>(threads);
  }
  if (is_restore) {
    fill(&r->store, store);
    fill(&r->key_file, key_file);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace cairn

int main(int argc, char** argv) {
  using namespace cairn;
  CLI::App app{"cairn-agent: Cairn client agent (image backup and restore)"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  std::string config_file;
  auto* log_opt =
      app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  app.add_option(
      "--config", config_file,
      "YAML settings (store, key_file, log_level, backup.{name,chunk_size,"
      "zstd_level,threads}); flags override them. See deploy/cairn-agent.yaml");

  BackupArgs b;
  auto* backup = app.add_subcommand(
      "backup", "Back up a block device or image file into a local repository");
  backup->add_option("--store", b.store, "Repository directory");
  backup
      ->add_option("--source", b.source,
                   "Block device or image file to back up")
      ->required();
  backup->add_option(
      "--name", b.name,
      "Source name recorded with the backup (default: the path)");
  backup->add_option("--id", b.id,
                     "Backup id (default: <name>-<time>-<random>)");
  backup->add_option("--parent", b.parent,
                     "Make an incremental of this backup");
  backup->add_flag("--incremental", b.incremental,
                   "Make an incremental of the newest backup of this source");
  backup->add_flag("--force-read", b.force_read,
                   "Read the whole source even if it is an image file "
                   "unchanged since the parent");
  backup->add_option(
      "--chunk-size", b.chunk_size,
      "Chunk size, a power of two from 64KiB to 16MiB (default 4MiB)");
  backup->add_option("--zstd-level", b.zstd_level,
                     "zstd level 1-19 (default 1)");
  backup->add_option("--key-file", b.key_file,
                     "Encrypt with this data key file");
  backup->add_option("--threads", b.threads,
                     "Worker threads (default: one per core)");
  backup->add_flag("--json", b.json, "Machine-readable output");
  backup->add_flag("--quiet", b.quiet, "No progress output");

  RestoreArgs r;
  auto* restore = app.add_subcommand(
      "restore", "Restore a backup to a file or block device");
  restore->add_option("--store", r.store, "Repository directory");
  restore->add_option("--backup", r.backup, "Backup id")->required();
  restore->add_option("--target", r.target, "Target file or block device")
      ->required();
  restore->add_option("--key-file", r.key_file,
                      "Data key file (encrypted backups)");
  restore->add_option("--threads", r.threads,
                      "Worker threads (default: one per core)");
  restore->add_flag("--json", r.json, "Machine-readable output");
  restore->add_flag("--quiet", r.quiet, "No progress output");

  EnrollArgs e;
  auto* enroll = app.add_subcommand(
      "enroll",
      "Enroll this machine with cairn-server: pin the CA, create a key, "
      "exchange a one-time token for a certificate");
  enroll->add_option("--server", e.server, "cairn-server address, HOST:PORT")
      ->required();
  enroll
      ->add_option("--token", e.token,
                   "One-time token from `cairnctl token create --role "
                   "agent`")
      ->required();
  enroll
      ->add_option("--ca-fingerprint", e.fingerprint,
                   "SHA-256 fingerprint of the Cairn CA, as `cairn-server "
                   "init` printed it")
      ->required();
  enroll->add_option("--name", e.name,
                     "Identity to request (default: this host's name)");
  enroll
      ->add_option("--state-dir", e.state_dir,
                   "Where to write ca.pem, cert.pem, key.pem and agent.yaml")
      ->required();
  enroll->add_option("--timeout", e.timeout_seconds,
                     "Seconds to wait for the server (default 30)");
  enroll->add_flag("--json", e.json, "Machine-readable output");

  RunArgs d;
  auto* run = app.add_subcommand(
      "run",
      "Run the agent daemon: keep a command stream to cairn-server open and "
      "execute its backup, restore and cancel commands (stops on SIGTERM)");
  run->add_option("--state-dir", d.state_dir,
                  "The directory `cairn-agent enroll` wrote")
      ->required();
  run->add_option("--heartbeat-interval", d.heartbeat_seconds,
                  "Seconds between heartbeats (default: agent.yaml, 10)");
  run->add_option("--reconnect-max", d.reconnect_max_seconds,
                  "Longest wait between reconnect attempts, seconds "
                  "(default: agent.yaml, 60)");
  run->add_option("--threads", d.threads,
                  "Pipeline workers per job (default: agent.yaml; 0: one per "
                  "core)");

  CLI11_PARSE(app, argc, argv);
  if (!config_file.empty()) {
    Status s = ApplyConfig(config_file, log_opt->count() > 0, &log_level, &b,
                           &r, backup->parsed(), restore->parsed());
    if (!s.ok()) return cli::ReportError(s, b.json || r.json);
  }
  if ((backup->parsed() && b.store.empty()) ||
      (restore->parsed() && r.store.empty())) {
    return cli::ReportError(
        absl::InvalidArgumentError(
            "--store is required (on the command line or in --config)"),
        b.json || r.json);
  }
  if (Status s = InitLogging("cairn-agent", log_level); !s.ok()) {
    return cli::ReportError(s, false);
  }
  if (enroll->parsed()) return RunEnrollCommand(e);
  if (run->parsed()) {
    if (log_opt->count() == 0) {
      if (Status s = InitLogging("cairn-agent", "info"); !s.ok()) {
        return cli::ReportError(s, false);
      }
    }
    return RunDaemonCommand(d);
  }
  if (backup->parsed()) return RunBackupCommand(b);
  if (restore->parsed()) return RunRestoreCommand(r);
  return 2;
}
