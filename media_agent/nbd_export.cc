#include "media_agent/nbd_export.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/env.h"
#include "common/manifest.h"
#include "common/process_util.h"
#include "common/strings.h"
#include "media_agent/key_handover.h"

extern char** environ;

namespace cairn {
namespace {

constexpr const char* kPluginName = "nbdkit-cairn-plugin.so";
// Descriptors Start() hands to the child are moved at or above this number,
// so the dup2() calls onto 0-4 in the child never clobber one another.
constexpr int kHighFd = 10;
constexpr int kExecStatusFd = 4;

// Moves `fd` to a close-on-exec descriptor >= kHighFd (closing the old one).
StatusOr<int> MoveHigh(int fd, std::string_view what) {
  return MoveFdAtOrAbove(fd, kHighFd, what);
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

StatusOr<std::string> FindNbdkit(const std::string& configured) {
  return FindProgram(configured, "nbdkit", "nbdkit");
}

// "nbd+unix:///?socket=" needs the path percent-encoded except for
// unreserved characters and '/'.
std::string UriEncodePath(std::string_view path) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
        c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Links Cairn's TLS files under the names nbdkit expects.
Status LinkTlsFiles(const std::string& cairn_dir, const std::string& out_dir) {
  CAIRN_ASSIGN_OR_RETURN(std::string abs_dir, AbsolutePath(cairn_dir));
  if (::mkdir(out_dir.c_str(), 0700) != 0) {
    return ErrnoToStatus(errno, "mkdir", out_dir);
  }
  const std::pair<const char*, const char*> kNames[] = {
      {"ca.pem", "ca-cert.pem"},
      {"cert.pem", "server-cert.pem"},
      {"key.pem", "server-key.pem"}};
  for (const auto& [from, to] : kNames) {
    std::string src = JoinPath(abs_dir, from);
    if (::access(src.c_str(), R_OK) != 0) {
      return ErrnoToStatus(errno, "TLS file", src);
    }
    std::string dst = JoinPath(out_dir, to);
    if (::symlink(src.c_str(), dst.c_str()) != 0) {
      return ErrnoToStatus(errno, "symlink", dst);
    }
  }
  return absl::OkStatus();
}

void RemoveTree(const std::string& dir) {
  if (dir.empty()) return;
  for (const char* name :
       {"nbd.sock", "nbdkit.pid", "nbdkit.log", "tls/ca-cert.pem",
        "tls/server-cert.pem", "tls/server-key.pem"}) {
    ::unlink(JoinPath(dir, name).c_str());
  }
  ::rmdir(JoinPath(dir, "tls").c_str());
  ::rmdir(dir.c_str());
}

bool ReadSmallFile(const std::string& path, std::string* out) {
  return Env::Default()->ReadFileToString(path, out).ok();
}

}  // namespace

StatusOr<std::string> FindNbdPlugin() {
  std::vector<std::string> tried;
  if (const char* env = ::getenv("CAIRN_NBD_PLUGIN");
      env != nullptr && *env != '\0') {
    if (::access(env, R_OK) == 0) return std::string(env);
    return absl::NotFoundError(
        StrCat("$CAIRN_NBD_PLUGIN names ", env, ", which does not exist"));
  }
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string dir = Dirname(std::string(exe, static_cast<size_t>(n)));
    for (const std::string& candidate :
         {JoinPath(dir, kPluginName),
          JoinPath(dir, StrCat("../lib/cairn/", kPluginName)),
          // The build tree: daemons in build/<component>/, the plugin in
          // build/.
          JoinPath(dir, StrCat("../", kPluginName))}) {
      if (::access(candidate.c_str(), R_OK) == 0) return candidate;
      tried.push_back(candidate);
    }
  }
  std::string list;
  for (const auto& t : tried) list += StrCat(" ", t);
  return absl::NotFoundError(StrCat(
      "the Cairn nbdkit plugin (", kPluginName, ") was not found; looked at",
      list, "; set $CAIRN_NBD_PLUGIN or build the nbdkit-cairn-plugin target"));
}

Status StatusFromNbdkitLog(const std::string& log, const Status& fallback) {
  size_t pos = 0;
  while (pos < log.size()) {
    size_t eol = log.find('\n', pos);
    if (eol == std::string::npos) eol = log.size();
    std::string_view line(log.data() + pos, eol - pos);
    pos = eol + 1;
    size_t open = line.find(" [");
    if (open == std::string_view::npos) continue;
    size_t close = line.find("] ", open);
    if (close == std::string_view::npos) continue;
    std::string_view code_name = line.substr(open + 2, close - open - 2);
    for (int c = 1; c <= 16; ++c) {
      auto code = static_cast<absl::StatusCode>(c);
      if (absl::StatusCodeToString(code) == std::string(code_name)) {
        return Status(code, std::string(line.substr(close + 2)));
      }
    }
  }
  std::string tail = log.size() > 2000 ? log.substr(log.size() - 2000) : log;
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  return Status(fallback.code(),
                StrCat(ToStd(fallback.message()),
                       tail.empty() ? "" : "; nbdkit said: ", tail));
}

std::vector<std::string> NbdExport::BuildArgv(const NbdExportOptions& o,
                                              const NbdLaunchPaths& p) {
  std::vector<std::string> argv = {
      p.nbdkit,     "--foreground", "--exit-with-parent",
      "--readonly", "-U",           p.socket,
      "-P",         p.pid_file};
  if (!p.tls_certificates.empty()) {
    argv.push_back("--tls=require");
    argv.push_back(StrCat("--tls-certificates=", p.tls_certificates));
    argv.push_back("--tls-verify-peer");
  }
  if (o.threads > 0) argv.push_back(StrCat("--threads=", o.threads));
  if (o.verbose) argv.push_back("--verbose");
  argv.push_back(p.plugin);
  argv.push_back(StrCat("store=", p.store));
  argv.push_back(StrCat("backup=", o.backup_id));
  if (!o.key_secret.empty()) argv.push_back(StrCat("key-fd=", kKeyFd));
  if (!o.lock_store) argv.push_back("lock=none");
  if (o.cache_bytes > 0) argv.push_back(StrCat("cache=", o.cache_bytes));
  if (o.parallel_requests) argv.push_back("parallel=true");
  return argv;
}

StatusOr<std::unique_ptr<NbdExport>> NbdExport::Start(
    const NbdExportOptions& o) {
  if (o.store.empty()) return absl::InvalidArgumentError("no store given");
  if (o.backup_id.empty()) {
    return absl::InvalidArgumentError("no backup id given");
  }
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(o.backup_id));
  if (!o.key_secret.empty() && o.key_secret.size() != 32) {
    return absl::InvalidArgumentError(
        StrCat("a data key is 32 bytes, got ", o.key_secret.size()));
  }
  std::unique_ptr<NbdExport> e(new NbdExport());
  NbdLaunchPaths& p = e->paths_;
  CAIRN_ASSIGN_OR_RETURN(p.nbdkit, FindNbdkit(o.nbdkit_path));
  if (!o.plugin_path.empty()) {
    if (::access(o.plugin_path.c_str(), R_OK) != 0) {
      return absl::NotFoundError(
          StrCat("the Cairn nbdkit plugin ", o.plugin_path, " does not exist"));
    }
    CAIRN_ASSIGN_OR_RETURN(p.plugin, AbsolutePath(o.plugin_path));
  } else {
    CAIRN_ASSIGN_OR_RETURN(p.plugin, FindNbdPlugin());
  }
  CAIRN_ASSIGN_OR_RETURN(p.store, AbsolutePath(o.store));

  std::string parent = o.runtime_dir;
  if (parent.empty()) {
    const char* tmp = ::getenv("TMPDIR");
    parent = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  }
  std::string templ = JoinPath(parent, "cairn-nbd-XXXXXX");
  if (::mkdtemp(templ.data()) == nullptr) {
    return ErrnoToStatus(errno, "mkdtemp", templ);
  }
  e->private_dir_ = templ;  // removed by ~NbdExport from here on
  p.socket =
      o.socket_path.empty() ? JoinPath(templ, "nbd.sock") : o.socket_path;
  CAIRN_ASSIGN_OR_RETURN(p.socket, AbsolutePath(p.socket));
  if (p.socket.size() >= 108) {
    return absl::InvalidArgumentError(
        StrCat("socket path ", p.socket,
               " is too long for a Unix socket (107 bytes at most)"));
  }
  p.pid_file = JoinPath(templ, "nbdkit.pid");
  if (!o.tls_dir.empty()) {
    p.tls_certificates = JoinPath(templ, "tls");
    CAIRN_RETURN_IF_ERROR(LinkTlsFiles(o.tls_dir, p.tls_certificates));
  }
  e->own_log_ = o.log_path.empty();
  if (e->own_log_) {
    e->log_path_ = JoinPath(templ, "nbdkit.log");
  } else {
    CAIRN_ASSIGN_OR_RETURN(e->log_path_, AbsolutePath(o.log_path));
  }

  // Everything the child needs, prepared before fork(): after it only
  // async-signal-safe calls are made.
  std::vector<std::string> args = BuildArgv(o, p);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  UniqueFd key_fd;
  if (!o.key_secret.empty()) {
    CAIRN_ASSIGN_OR_RETURN(int r, MakeKeyPipe(o.key_secret));
    CAIRN_ASSIGN_OR_RETURN(int high, MoveHigh(r, "key pipe"));
    key_fd.Reset(high);
  }
  int raw = ::open(e->log_path_.c_str(),
                   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (raw < 0) return ErrnoToStatus(errno, "open nbdkit log", e->log_path_);
  CAIRN_ASSIGN_OR_RETURN(int log_high, MoveHigh(raw, e->log_path_));
  UniqueFd log_fd(log_high);
  raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (raw < 0) return ErrnoToStatus(errno, "open", "/dev/null");
  CAIRN_ASSIGN_OR_RETURN(int null_high, MoveHigh(raw, "/dev/null"));
  UniqueFd null_fd(null_high);
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    return ErrnoToStatus(errno, "pipe", "nbdkit exec status");
  }
  UniqueFd status_read(status_pipe[0]);
  CAIRN_ASSIGN_OR_RETURN(int status_high,
                         MoveHigh(status_pipe[1], "exec status pipe"));
  UniqueFd status_write(status_high);

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork", p.nbdkit);
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) signal(sig, SIG_DFL);
    int ok = ::dup2(null_fd.get(), 0) >= 0 && ::dup2(log_fd.get(), 1) >= 0 &&
             ::dup2(log_fd.get(), 2) >= 0 &&
             ::dup3(status_write.get(), kExecStatusFd, O_CLOEXEC) >= 0;
    if (ok && key_fd.get() >= 0) {
      ok = ::dup2(key_fd.get(), kKeyFd) >= 0;  // dup2 clears close-on-exec
    } else if (ok) {
      ::close(kKeyFd);
    }
    ::close_range(kExecStatusFd + 1, ~0U, 0);
    if (ok) ::execve(argv[0], argv.data(), environ);
    int err = errno;
    ssize_t ignored = ::write(kExecStatusFd, &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }
  e->pid_ = pid;
  key_fd.Reset();
  log_fd.Reset();
  null_fd.Reset();
  status_write.Reset();
  int exec_errno = 0;
  ssize_t got;
  do {
    got = ::read(status_read.get(), &exec_errno, sizeof(exec_errno));
  } while (got < 0 && errno == EINTR);
  if (got == sizeof(exec_errno)) {
    int ws;
    ::waitpid(pid, &ws, 0);
    e->reaped_ = true;
    return ErrnoToStatus(exec_errno, "exec", p.nbdkit);
  }

  // nbdkit writes its pid file once it listens.
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(o.start_timeout_ms);
  while (true) {
    int ws;
    if (e->Reap(&ws)) {
      std::string log;
      ReadSmallFile(e->log_path_, &log);
      return StatusFromNbdkitLog(
          log, absl::UnavailableError(StrCat("nbdkit ", DescribeWaitStatus(ws),
                                             " before serving")));
    }
    std::string pid_text;
    if (ReadSmallFile(p.pid_file, &pid_text) && !pid_text.empty() &&
        pid_text.back() == '\n') {
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      Status timeout = absl::DeadlineExceededError(
          StrCat("nbdkit did not listen on ", p.socket, " within ",
                 o.start_timeout_ms, " ms; log: ", e->LogTail()));
      e->Stop().IgnoreError();
      return timeout;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return e;
}

NbdExport::~NbdExport() { Stop().IgnoreError(); }

bool NbdExport::Reap(int* wait_status) {
  if (reaped_) {
    *wait_status = wait_status_;
    return true;
  }
  if (pid_ <= 0) return false;
  int ws = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &ws, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    reaped_ = true;
    wait_status_ = r == pid_ ? ws : 0;
    *wait_status = wait_status_;
    return true;
  }
  return false;
}

std::string NbdExport::LogTail() const {
  std::string log;
  ReadSmallFile(log_path_, &log);
  if (log.size() > 2000) log = log.substr(log.size() - 2000);
  while (!log.empty() && log.back() == '\n') log.pop_back();
  return log;
}

Status NbdExport::CheckRunning() {
  int ws;
  if (!Reap(&ws)) return absl::OkStatus();
  return absl::UnavailableError(StrCat("nbdkit (pid ", pid_, ") ",
                                       DescribeWaitStatus(ws),
                                       "; log: ", LogTail()));
}

Status NbdExport::Stop() {
  Status result = absl::OkStatus();
  if (pid_ > 0 && !stop_requested_) {
    stop_requested_ = true;
    int ws;
    if (Reap(&ws)) {
      // It died on its own: that is worth reporting.
      result = absl::UnavailableError(StrCat("nbdkit (pid ", pid_, ") had ",
                                             DescribeWaitStatus(ws),
                                             "; log: ", LogTail()));
    } else {
      ::kill(pid_, SIGTERM);
      auto deadline =
          std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!Reap(&ws)) {
        if (std::chrono::steady_clock::now() > deadline) {
          ::kill(pid_, SIGKILL);
          while (::waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {
          }
          reaped_ = true;
          wait_status_ = ws;
          result = absl::DeadlineExceededError(StrCat(
              "nbdkit (pid ", pid_, ") ignored SIGTERM for 10 s; killed"));
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  if (!private_dir_.empty()) {
    struct stat st;
    if (paths_.socket.rfind(private_dir_, 0) != 0 && reaped_ &&
        ::lstat(paths_.socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      ::unlink(paths_.socket.c_str());  // nbdkit's socket outside the dir
    }
    RemoveTree(private_dir_);
    private_dir_.clear();
  }
  return result;
}

std::string NbdExport::uri() const {
  return StrCat(tls() ? "nbds+unix" : "nbd+unix",
                ":///?socket=", UriEncodePath(paths_.socket));
}

}  // namespace cairn
