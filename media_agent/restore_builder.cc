#include "media_agent/restore_builder.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <vector>

#include "common/strings.h"
#include "common/temp_dir.h"
#include "media_agent/image_customizer.h"
#include "media_agent/key_handover.h"
#include "media_agent/nbd_export.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

StatusOr<RestoreBuildResult> BuildCustomizedImage(
    Repository& repo, const RestoreBuildOptions& options) {
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(options.backup_id));
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(options.new_id));
  if (!options.plan.source_backup_id().empty() &&
      options.plan.source_backup_id() != options.backup_id) {
    return absl::InvalidArgumentError(StrCat(
        "the plan was made for backup '", options.plan.source_backup_id(),
        "', not '", options.backup_id, "'"));
  }
  CAIRN_RETURN_IF_ERROR(ValidateCustomizationPlan(options.plan));
  CAIRN_ASSIGN_OR_RETURN(bool taken, repo.manifests().Exists(options.new_id));
  if (taken) {
    return absl::AlreadyExistsError(
        StrCat("an image with id '", options.new_id, "' already exists"));
  }
  CAIRN_ASSIGN_OR_RETURN(Manifest base,
                         repo.LoadManifest(options.backup_id, options.key));
  // The boot template whose kernel the plan boots: an image of this store,
  // read with the same key; checked before anything starts.
  std::optional<Manifest> tmpl;
  if (options.plan.has_template_kernel()) {
    const std::string& id = options.plan.template_kernel().image_id();
    if (Status s = ValidateBackupId(id); !s.ok()) {
      return absl::InvalidArgumentError(
          StrCat("the plan's boot template image id: ", ToStd(s.message())));
    }
    auto m = repo.LoadManifest(id, options.key);
    if (!m.ok()) {
      return Status(m.status().code(),
                    StrCat("boot template image '", id,
                           "': ", ToStd(m.status().message())));
    }
    tmpl = *std::move(m);
  }
  auto progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (options.progress) options.progress(phase, done, total);
  };
  auto check_cancelled = [&]() -> Status {
    if (options.cancelled && options.cancelled()) {
      return absl::CancelledError("the restore build was cancelled");
    }
    return Status();
  };

  RestoreBuildResult result;
  CAIRN_ASSIGN_OR_RETURN(
      std::unique_ptr<TempDir> work,
      TempDir::Create("cairn-restore-build", options.work_parent));

  progress("export", 0, 0);
  auto export_start = Clock::now();
  NbdExportOptions eo;
  eo.store = repo.root();
  eo.backup_id = options.backup_id;
  if (base.encrypted() && options.key != nullptr) {
    eo.key_secret = options.key->secret();
  }
  // The socket's private directory goes to $TMPDIR or /tmp: under a deep
  // work directory its path could exceed a Unix socket's 107 bytes.
  eo.runtime_dir.clear();
  eo.lock_store = false;  // the caller's Repository holds the lock
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<NbdExport> exported,
                         NbdExport::Start(eo));
  WipeSecret(&eo.key_secret);
  std::unique_ptr<NbdExport> template_export;
  if (tmpl.has_value()) {
    NbdExportOptions to;
    to.store = repo.root();
    to.backup_id = tmpl->backup_id;
    if (tmpl->encrypted() && options.key != nullptr) {
      to.key_secret = options.key->secret();
    }
    // As for the backup's export: the socket in $TMPDIR or /tmp.
    to.lock_store = false;
    progress(StrCat("export of boot template ", to.backup_id), 0, 0);
    auto started = NbdExport::Start(to);
    WipeSecret(&to.key_secret);
    if (!started.ok()) return started.status();
    template_export = *std::move(started);
  }
  result.export_seconds = SecondsSince(export_start);

  CAIRN_RETURN_IF_ERROR(check_cancelled());
  auto customize_start = Clock::now();
  ImageCustomizerOptions co;
  co.base_nbd_socket = exported->socket_path();
  co.work_dir = work->path();
  co.plan = options.plan;
  if (template_export != nullptr) {
    co.template_nbd_socket = template_export->socket_path();
  }
  co.on_step = [&](std::string_view step) {
    progress(StrCat("customize: ", step), 0, 0);
  };
  CAIRN_ASSIGN_OR_RETURN(CustomizedOverlay overlay, CustomizeImage(co));
  result.customize_seconds = SecondsSince(customize_start);
  result.report = std::move(overlay.report);

  CAIRN_RETURN_IF_ERROR(check_cancelled());
  progress("commit", 0, 0);
  auto commit_start = Clock::now();
  DerivedImageOptions d;
  d.overlay_path = overlay.overlay_path;
  d.base = &base;
  d.new_id = options.new_id;
  d.source = base.source;
  d.created_unix_us =
      options.created_unix_us != 0
          ? options.created_unix_us
          : std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  d.profile_ref = options.plan.target_profile_sha256();
  d.key = options.key;
  d.progress = [&](uint64_t done, uint64_t total) {
    progress("commit", done, total);
  };
  std::unique_ptr<BackupSession> session = repo.BeginBackup();
  CAIRN_ASSIGN_OR_RETURN(result.stats,
                         WriteDerivedImage(d, session.get(), &result.manifest));
  session.reset();
  result.commit_seconds = SecondsSince(commit_start);
  if (Status s = exported->Stop(); !s.ok()) {
    // The image is committed; an export that died afterwards changes
    // nothing, but say so in the log of the caller.
    progress(StrCat("export stopped with: ", ToStd(s.message())), 0, 0);
  }
  if (template_export != nullptr) {
    if (Status s = template_export->Stop(); !s.ok()) {
      progress(StrCat("template export stopped with: ", ToStd(s.message())), 0,
               0);
    }
  }
  return result;
}

}  // namespace cairn
