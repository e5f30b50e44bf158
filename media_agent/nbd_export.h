// NbdExport: one backup served read-only over NBD by an nbdkit process
// running the Cairn plugin (nbdkit-cairn-plugin.so, media_agent/nbd_plugin.cc)
// - the block device that restore builds, instant boot and file-level browse
// read (DESIGN.md sections 5 and 6; docs/nbd-export.md).
//
// Start() runs
//   nbdkit --foreground --exit-with-parent --readonly -U SOCKET -P PIDFILE
//          [--tls=require --tls-certificates=DIR --tls-verify-peer]
//          PLUGIN store=DIR backup=ID [key-fd=3] [lock=none] [cache=N]
//          [parallel=true]
// and returns once nbdkit is listening (it writes its pid file only then), or
// with nbdkit's own error (unknown backup, wrong key, damaged manifest: the
// plugin opens everything before serving). The data key goes through a pipe
// that the child sees as descriptor 3 (kKeyFd) and never through argv or the
// environment; every other descriptor of this process is closed in the child.
//
// The socket, pid file and log live in a private directory (mode 0700) that
// Stop() removes, so only this user can connect (the socket itself is
// created by nbdkit with default permissions; the directory protects it).
//
// --exit-with-parent: nbdkit dies when the thread that called Start() exits
// (PR_SET_PDEATHSIG), so call Start() from a long-lived thread.
//
// Thread safety: not thread-safe; one owner calls Stop()/CheckRunning().
#ifndef CAIRN_MEDIA_AGENT_NBD_EXPORT_H_
#define CAIRN_MEDIA_AGENT_NBD_EXPORT_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace cairn {

struct NbdExportOptions {
  std::string store;      // repository directory (required)
  std::string backup_id;  // required
  // The data key's 32-byte secret, or empty for an unencrypted backup. Only
  // written into a pipe; Start() does not keep a copy. The caller owns (and
  // should WipeSecret()) its own copy.
  std::string key_secret;
  // Where nbdkit listens; empty: "nbd.sock" in the private directory.
  std::string socket_path;
  // Parent of the private directory; empty: $TMPDIR or /tmp.
  std::string runtime_dir;
  // A Cairn TLS directory (ca.pem, cert.pem, key.pem - common/tls.h): serve
  // NBD over TLS only, to clients with a certificate from the same CA.
  // Empty: no TLS (the Unix socket's directory is the access control).
  std::string tls_dir;
  // false: lock=none, for a caller that itself holds the repository lock.
  bool lock_store = true;
  uint64_t cache_bytes = 0;  // plugin's decoded-chunk cache; 0: its default
  int threads = 0;           // nbdkit --threads; 0: nbdkit's default
  // parallel=true: requests of one connection in parallel. Unsafe with
  // nbdkit 1.32 (media_agent/nbd_plugin_config.h).
  bool parallel_requests = false;
  bool verbose = false;  // nbdkit -v: debug messages into the log
  // nbdkit's stderr; empty: "nbdkit.log" in the private directory (removed by
  // Stop()).
  std::string log_path;
  std::string nbdkit_path;  // empty: "nbdkit" found on $PATH
  std::string plugin_path;  // empty: FindNbdPlugin()
  int start_timeout_ms = 30000;
};

// Paths Start() has settled on, from which the argument vector is built.
struct NbdLaunchPaths {
  std::string nbdkit;
  std::string plugin;
  std::string store;  // absolute
  std::string socket;
  std::string pid_file;
  std::string tls_certificates;  // nbdkit's layout; empty without TLS
};

class NbdExport {
 public:
  // The descriptor number on which the plugin reads the key in the child.
  static constexpr int kKeyFd = 3;

  // Starts nbdkit and waits until it listens. InvalidArgument for missing or
  // malformed options (a key that is not 32 bytes); NotFound if nbdkit or the
  // plugin is missing (naming what to install or set); the plugin's own code
  // and message if it refuses to start (NotFound for an unknown backup,
  // FailedPrecondition for a wrong or missing key, DataLoss for a damaged
  // manifest); DeadlineExceeded if it does not listen in time (it is killed).
  static StatusOr<std::unique_ptr<NbdExport>> Start(
      const NbdExportOptions& options);

  // Stops nbdkit (Stop()) if still running.
  ~NbdExport();
  NbdExport(const NbdExport&) = delete;
  NbdExport& operator=(const NbdExport&) = delete;

  // SIGTERM, then SIGKILL after 10 s; reaps the process and removes the
  // private directory. OK if nbdkit was running and stopped; the error it
  // died of if it had exited by itself. Idempotent.
  Status Stop();

  // OK while nbdkit runs. Once it has exited: Unavailable with its exit
  // status and the end of its log (the process is reaped).
  Status CheckRunning();

  const std::string& socket_path() const { return paths_.socket; }
  // nbd+unix:///?socket=PATH (nbds+unix with TLS), for libnbd tools and
  // qemu. A TLS client adds &tls-certificates=DIR with its own files.
  std::string uri() const;
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  bool tls() const { return !paths_.tls_certificates.empty(); }

  // nbdkit's argument vector (argv[0] included). Never holds key material:
  // the key is referenced only as key-fd=3. Exposed for tests.
  static std::vector<std::string> BuildArgv(const NbdExportOptions& options,
                                            const NbdLaunchPaths& paths);

 private:
  NbdExport() = default;
  // waitpid without blocking; true (and *exit_status set) once reaped.
  bool Reap(int* wait_status);
  std::string LogTail() const;

  pid_t pid_ = -1;
  bool reaped_ = false;
  int wait_status_ = 0;
  bool stop_requested_ = false;
  NbdLaunchPaths paths_;
  std::string private_dir_;
  std::string log_path_;
  bool own_log_ = false;  // the log is in the private directory
};

// Finds nbdkit-cairn-plugin.so: $CAIRN_NBD_PLUGIN if set (it must exist),
// else next to the running executable, else in ../lib/cairn/ (installed) or
// ../ (the build tree) relative to it.
// NotFound naming every place looked at.
StatusOr<std::string> FindNbdPlugin();

// The Status an nbdkit log reports: the first line with a plugin error
// "[CODE] message" becomes Status(CODE, message); otherwise `fallback` with
// the last lines of the log appended.
Status StatusFromNbdkitLog(const std::string& log, const Status& fallback);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_NBD_EXPORT_H_
