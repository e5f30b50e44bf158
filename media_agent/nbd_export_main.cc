// cairn-nbd-export: serve one backup read-only over NBD until SIGTERM or
// SIGINT (docs/nbd-export.md). To be wired into `cairn-media export`.
//
//   cairn-nbd-export --store DIR --backup ID [--key-file FILE]
//                    [--socket PATH] [--runtime-dir DIR] [--tls-dir DIR]
//                    [--no-lock] [--cache SIZE] [--threads N] [--log FILE]
//                    [--parallel-requests]
//                    [--verbose] [--json]
//
// Prints the socket and NBD URI once nbdkit listens (one JSON object with
// --json), then waits. Exit codes are common/cli.h's: 0 stopped by a signal,
// 2 usage, 3 unknown backup or store, 4 damaged manifest, 5 wrong or missing
// key, 7 nbdkit died while serving, 10 other errors.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/cli.h"
#include "common/strings.h"
#include "media_agent/key_handover.h"
#include "media_agent/nbd_export.h"
#include "media_agent/nbd_plugin_config.h"

namespace {

using cairn::Status;

struct Args {
  cairn::NbdExportOptions options;
  std::string key_file;
  std::string cache;
  bool no_lock = false;
  bool json = false;
};

int Run(Args& a) {
  if (!a.key_file.empty()) {
    auto secret = cairn::ReadKeySecretFromFile(a.key_file);
    if (!secret.ok()) return cairn::cli::ReportError(secret.status(), a.json);
    a.options.key_secret = *std::move(secret);
  }
  if (!a.cache.empty()) {
    auto bytes = cairn::ParseByteSize(a.cache);
    if (!bytes.ok()) {
      cairn::WipeSecret(&a.options.key_secret);
      return cairn::cli::ReportError(
          Status(bytes.status().code(),
                 cairn::StrCat("--cache: ",
                               cairn::ToStd(bytes.status().message()))),
          a.json);
    }
    a.options.cache_bytes = *bytes;
  }
  a.options.lock_store = !a.no_lock;

  // SIGTERM/SIGINT/SIGHUP are taken with sigtimedwait below; blocked before
  // nbdkit starts (the child resets its mask).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);

  auto exported = cairn::NbdExport::Start(a.options);
  cairn::WipeSecret(&a.options.key_secret);
  if (!exported.ok()) return cairn::cli::ReportError(exported.status(), a.json);
  cairn::NbdExport& e = **exported;
  if (a.json) {
    cairn::cli::PrintJson({{"backup", a.options.backup_id},
                           {"socket", e.socket_path()},
                           {"uri", e.uri()},
                           {"tls", e.tls()},
                           {"pid", e.pid()},
                           {"log", e.log_path()}});
  } else {
    std::printf("exporting backup %s\nsocket: %s\nuri: %s\n",
                a.options.backup_id.c_str(), e.socket_path().c_str(),
                e.uri().c_str());
    std::fflush(stdout);
  }

  while (true) {
    struct timespec one_second = {1, 0};
    int sig = sigtimedwait(&stop_signals, nullptr, &one_second);
    if (sig > 0) break;
    if (Status s = e.CheckRunning(); !s.ok()) {
      return cairn::cli::ReportError(s, a.json);
    }
  }
  Status stopped = e.Stop();
  if (!stopped.ok()) return cairn::cli::ReportError(stopped, a.json);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{
      "cairn-nbd-export: serve one backup read-only over NBD (nbdkit with "
      "the Cairn plugin) until SIGTERM or SIGINT. See docs/nbd-export.md."};
  app.name("cairn-nbd-export");
  app.add_option("--store", a.options.store, "Repository directory")
      ->required();
  app.add_option("--backup", a.options.backup_id, "Backup id")->required();
  app.add_option("--key-file", a.key_file,
                 "Data key file of an encrypted backup (mode 0600, owned by "
                 "you); handed to nbdkit through a pipe, never on its "
                 "command line");
  app.add_option("--socket", a.options.socket_path,
                 "Unix socket to listen on (default: nbd.sock in a private "
                 "0700 directory); put it in a directory only you can "
                 "reach");
  app.add_option("--runtime-dir", a.options.runtime_dir,
                 "Where the private directory is made (default $TMPDIR or "
                 "/tmp)");
  app.add_option("--tls-dir", a.options.tls_dir,
                 "Cairn TLS directory (ca.pem, cert.pem, key.pem): require "
                 "TLS with a client certificate from the same CA");
  app.add_flag("--no-lock", a.no_lock,
               "Do not take the repository lock (the store's owner is "
               "running; see docs/nbd-export.md)");
  app.add_option("--cache", a.cache,
                 "Decoded-chunk cache bound, e.g. 256M (default 256M)");
  app.add_option("--threads", a.options.threads, "nbdkit worker threads");
  app.add_flag("--parallel-requests", a.options.parallel_requests,
               "Serve several requests of one connection at once (unsafe "
               "with nbdkit 1.32: it aborts when such a client disconnects)");
  app.add_option("--log", a.options.log_path,
                 "Keep nbdkit's log in this file (default: in the private "
                 "directory, removed at exit)");
  app.add_flag("--verbose", a.options.verbose,
               "nbdkit debug messages in the log");
  app.add_flag("--json", a.json, "Machine-readable output");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return Run(a);
}
