#include "media_agent/image_export.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/time/time.h"
#include "common/env.h"
#include "common/file_publish.h"
#include "common/manifest.h"
#include "common/strings.h"
#include "common/subprocess.h"
#include "common/temp_dir.h"
#include "media_agent/key_handover.h"
#include "media_agent/nbd_export.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The temporary image next to the destination: unlinked on destruction
// unless Release()d (after the rename).
class TempImage {
 public:
  static StatusOr<std::unique_ptr<TempImage>> Create(const std::string& dir,
                                                     const std::string& name) {
    std::string tmpl = StrCat(dir, "/", ExportTempPrefix(name), "XXXXXX");
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    int fd = ::mkostemp(buf.data(), O_CLOEXEC);  // mode 0600
    if (fd < 0) return ErrnoToStatus(errno, "create temporary image", tmpl);
    ::close(fd);
    return std::unique_ptr<TempImage>(new TempImage(buf.data()));
  }
  ~TempImage() {
    if (!released_) ::unlink(path_.c_str());
  }
  TempImage(const TempImage&) = delete;
  TempImage& operator=(const TempImage&) = delete;
  const std::string& path() const { return path_; }
  void Release() { released_ = true; }

 private:
  explicit TempImage(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool released_ = false;
};

std::string DescribeWait(int ws) {
  if (WIFEXITED(ws)) return StrCat("exited with status ", WEXITSTATUS(ws));
  if (WIFSIGNALED(ws)) return StrCat("was killed by signal ", WTERMSIG(ws));
  return StrCat("ended with wait status ", ws);
}

// The status of a qemu-img that failed: the plugin's own error if nbdkit
// logged one (a damaged chunk is DataLoss), ResourceExhausted for a full
// disk, Internal otherwise.
Status QemuImgFailure(const std::string& how, const std::string& messages,
                      const std::string& nbdkit_log) {
  std::string text =
      StrCat("qemu-img convert ", how, messages.empty() ? "" : ": ", messages);
  if (messages.find("No space left on device") != std::string::npos) {
    return absl::ResourceExhaustedError(text);
  }
  Status fallback = absl::InternalError(text);
  Status s = StatusFromNbdkitLog(nbdkit_log, fallback);
  if (s.code() == fallback.code()) return fallback;
  return Status(s.code(), StrCat(text, "; nbdkit: ", ToStd(s.message())));
}

Status CancelledStatus(const std::string& backup_id, const std::string& dest) {
  return absl::CancelledError(StrCat("export of '", backup_id, "' to ", dest,
                                     " cancelled; nothing was written under "
                                     "that name"));
}

}  // namespace

StatusOr<ImageFormat> ParseImageFormat(std::string_view name) {
  if (name == "raw") return ImageFormat::kRaw;
  if (name == "qcow2") return ImageFormat::kQcow2;
  if (name == "vmdk") return ImageFormat::kVmdk;
  if (name == "vhdx") return ImageFormat::kVhdx;
  return absl::InvalidArgumentError(StrCat(
      "unknown image format '", name, "' (expected raw, qcow2, vmdk or vhdx)"));
}

std::string_view ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kRaw:
      return "raw";
    case ImageFormat::kQcow2:
      return "qcow2";
    case ImageFormat::kVmdk:
      return "vmdk";
    case ImageFormat::kVhdx:
      return "vhdx";
  }
  return "raw";
}

std::string_view QemuImgCreateOptions(ImageFormat format) {
  switch (format) {
    case ImageFormat::kRaw:
      return "";
    case ImageFormat::kQcow2:
      return "compat=1.1";
    case ImageFormat::kVmdk:
      return "subformat=streamOptimized";
    case ImageFormat::kVhdx:
      return "subformat=dynamic";
  }
  return "";
}

std::string ExportTempPrefix(std::string_view destination_name) {
  return StrCat(".", destination_name, ".cairn-export-");
}

std::vector<std::string> BuildQemuImgConvertArgv(const std::string& qemu_img,
                                                 ImageFormat format,
                                                 const std::string& source_uri,
                                                 const std::string& target) {
  std::vector<std::string> argv = {
      qemu_img.empty() ? std::string("qemu-img") : qemu_img,
      "convert",
      "-p",
      "-f",
      "raw",
      "-O",
      std::string(ImageFormatName(format))};
  std::string_view opts = QemuImgCreateOptions(format);
  if (!opts.empty()) {
    argv.push_back("-o");
    argv.push_back(std::string(opts));
  }
  argv.push_back(source_uri);
  argv.push_back(target);
  return argv;
}

std::optional<double> ParseQemuImgProgress(std::string_view output) {
  // Lines look like "    (42.50/100%)\r"; take the last complete one.
  size_t end = output.rfind("/100%)");
  while (end != std::string_view::npos) {
    size_t open = output.rfind('(', end);
    if (open != std::string_view::npos) {
      std::string number(output.substr(open + 1, end - open - 1));
      char* stop = nullptr;
      errno = 0;
      double pct = std::strtod(number.c_str(), &stop);
      if (!number.empty() && stop == number.c_str() + number.size() &&
          errno == 0 && pct >= 0 && pct <= 100) {
        return pct;
      }
    }
    if (end == 0) break;
    end = output.rfind("/100%)", end - 1);
  }
  return std::nullopt;
}

StatusOr<ImageExportResult> ExportImage(Repository& repo,
                                        const ImageExportOptions& options) {
  const auto start = Clock::now();
  CAIRN_ASSIGN_OR_RETURN(ImageFormat format, ParseImageFormat(options.format));
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(options.backup_id));
  if (options.destination.empty()) {
    return absl::InvalidArgumentError("no destination file given");
  }

  // The destination: absolute, its directory present, and not in the way.
  std::error_code ec;
  std::filesystem::path dest =
      std::filesystem::absolute(options.destination, ec).lexically_normal();
  if (ec) {
    return absl::InvalidArgumentError(
        StrCat("destination ", options.destination, ": ", ec.message()));
  }
  const std::string name = dest.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return absl::InvalidArgumentError(
        StrCat("destination ", options.destination, " is a directory"));
  }
  const std::string dir = dest.parent_path().string();
  const std::string dest_path = dest.string();
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) {
      return ErrnoToStatus(errno, "stat", dir);
    }
    return absl::NotFoundError(
        StrCat("destination directory ", dir, " does not exist"));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(StrCat(dir, " is not a directory"));
  }
  if (::lstat(dest_path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          StrCat("destination ", dest_path, " is a directory"));
    }
    if (!options.overwrite) {
      return absl::AlreadyExistsError(
          StrCat(dest_path,
                 " already exists; it is not replaced without "
                 "overwrite"));
    }
  } else if (errno != ENOENT) {
    return ErrnoToStatus(errno, "stat", dest_path);
  }

  // The image: its manifest (and, with a key, its signature) first, so an
  // unknown backup or a wrong key is reported before nbdkit starts.
  CAIRN_ASSIGN_OR_RETURN(Manifest manifest,
                         repo.LoadManifest(options.backup_id, options.key));
  if (manifest.encrypted() && options.key == nullptr) {
    return absl::FailedPreconditionError(
        StrCat("image '", options.backup_id,
               "' is encrypted; its data key is needed"));
  }

  ImageExportResult result;
  result.destination = dest_path;
  result.format = format;
  result.backup_id = options.backup_id;
  result.virtual_size = manifest.image_size;
  auto report = [&](uint64_t done) {
    if (options.progress) options.progress(done, manifest.image_size);
  };

  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<TempDir> work,
                         TempDir::Create("cairn-export", options.work_parent));
  NbdExportOptions eo;
  eo.store = repo.root();
  eo.backup_id = options.backup_id;
  if (manifest.encrypted()) eo.key_secret = options.key->secret();
  eo.runtime_dir = work->path();
  eo.lock_store = false;  // the caller's Repository holds the lock
  eo.nbdkit_path = options.nbdkit_path;
  eo.plugin_path = options.plugin_path;
  auto started = NbdExport::Start(eo);
  WipeSecret(&eo.key_secret);
  if (!started.ok()) return started.status();
  std::unique_ptr<NbdExport> exported = *std::move(started);
  result.export_seconds = SecondsSince(start);

  const auto convert_start = Clock::now();
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<TempImage> temp,
                         TempImage::Create(dir, name));
  const std::string progress_path = StrCat(work->path(), "/qemu-img.progress");
  const std::string messages_path = StrCat(work->path(), "/qemu-img.log");
  SpawnOptions so;
  so.stdout_path = progress_path;
  so.stderr_path = messages_path;
  auto child_or = ChildProcess::Spawn(
      BuildQemuImgConvertArgv(options.qemu_img_path, format, exported->uri(),
                              temp->path()),
      so);
  if (!child_or.ok()) {
    if (child_or.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(
          StrCat(ToStd(child_or.status().message()),
                 " (qemu-img is needed: install qemu-utils)"));
    }
    return child_or.status();
  }
  std::unique_ptr<ChildProcess> child = *std::move(child_or);

  report(0);
  uint64_t reported = 0;
  int wait_status = 0;
  while (true) {
    if (options.cancelled && options.cancelled()) {
      child->Terminate(absl::Seconds(5));
      return CancelledStatus(options.backup_id, dest_path);
    }
    std::optional<int> ws =
        child->WaitUntil(absl::Now() + absl::Milliseconds(250));
    if (ws.has_value()) {
      wait_status = *ws;
      break;
    }
    if (options.progress) {
      std::string out;
      if (Env::Default()->ReadFileToString(progress_path, &out).ok()) {
        if (std::optional<double> pct = ParseQemuImgProgress(out)) {
          uint64_t done = static_cast<uint64_t>(
              *pct / 100.0 * static_cast<double>(manifest.image_size));
          if (done > reported) {
            reported = done;
            report(done);
          }
        }
      }
    }
  }
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    if (options.cancelled && options.cancelled()) {
      // A terminal's Ctrl-C may have reached nbdkit first.
      return CancelledStatus(options.backup_id, dest_path);
    }
    std::string nbdkit_log;
    Env::Default()
        ->ReadFileToString(exported->log_path(), &nbdkit_log)
        .IgnoreError();  // without a log: the fallback status
    return QemuImgFailure(DescribeWait(wait_status),
                          ReadLogTail(messages_path, 2000), nbdkit_log);
  }

  CAIRN_RETURN_IF_ERROR(SyncFile(temp->path(), /*make_private=*/true));
  // Every byte has been read; an nbdkit that failed while stopping changes
  // nothing about the image.
  exported->Stop().IgnoreError();
  CAIRN_RETURN_IF_ERROR(
      PublishFile(temp->path(), dest_path, options.overwrite));
  temp->Release();
  result.convert_seconds = SecondsSince(convert_start);

  if (::stat(dest_path.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, "stat", dest_path);
  }
  result.file_size = static_cast<uint64_t>(st.st_size);
  result.allocated_bytes = static_cast<uint64_t>(st.st_blocks) * 512;
  report(manifest.image_size);
  result.seconds = SecondsSince(start);
  if (result.seconds > 0) {
    result.bytes_per_second =
        static_cast<double>(result.virtual_size) / result.seconds;
  }
  return result;
}

}  // namespace cairn
