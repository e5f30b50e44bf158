#include "server/image_exports.h"

#include <optional>

#include "common/data_key.h"
#include "common/strings.h"
#include "media_agent/repository.h"
#include "server/job_engine.h"

namespace cairn {

StatusOr<HypervisorDisk> ImageExports::Export(
    const std::string& backup_id, const std::string& format,
    const std::function<void(uint64_t done, uint64_t total)>& progress,
    const std::function<bool()>& cancelled) const {
  CAIRN_ASSIGN_OR_RETURN(ImageFormat parsed, ParseImageFormat(format));
  CAIRN_ASSIGN_OR_RETURN(BackupEntry image, catalog_->GetBackup(backup_id));
  if (image.status != BackupStatus::kAvailable) {
    return absl::FailedPreconditionError(StrCat(
        "image '", image.backup_id, "' is ", BackupStatusName(image.status)));
  }
  if (image.media_agent_id != kEmbeddedMediaId || repository_ == nullptr) {
    return absl::UnimplementedError(
        StrCat("image '", image.backup_id, "' is on media agent '",
               image.media_agent_id,
               "'; this server exports only from its embedded media agent. Run "
               "`cairn-media export` on that media agent's host"));
  }
  std::optional<DataKey> key;
  if (!data_key_.empty()) {
    CAIRN_ASSIGN_OR_RETURN(key, DataKey::FromSecret(data_key_));
  }
  HypervisorDisk out;
  CAIRN_ASSIGN_OR_RETURN(out.dir, TempDir::Create("cairn-export", work_dir_));
  ImageExportOptions o;
  o.backup_id = image.backup_id;
  o.format = std::string(ImageFormatName(parsed));
  o.destination = StrCat(out.dir->path(), "/", image.backup_id, ".",
                         ImageFormatName(parsed));
  o.key = key ? &*key : nullptr;
  // nbdkit's socket lives in $TMPDIR or /tmp: a Unix socket path under a
  // deep server directory could exceed 107 bytes. It holds no image data.
  o.work_parent.clear();
  o.progress = progress;
  o.cancelled = cancelled;
  CAIRN_ASSIGN_OR_RETURN(out.result, ExportImage(*repository_, o));
  return out;
}

}  // namespace cairn
