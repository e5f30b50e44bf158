#include "server/boot_templates.h"

#include <string.h>

#include "common/strings.h"

namespace cairn {

StatusOr<std::string> TemplateKernel(const v1::HardwareProfile& profile) {
  const v1::InstalledKernel* best = nullptr;
  for (const v1::InstalledKernel& k : profile.kernels()) {
    if (!k.module_tree_present() || k.image_path().empty()) continue;
    if (k.version() == profile.running_kernel()) return k.version();
    if (best == nullptr ||
        strverscmp(k.version().c_str(), best->version().c_str()) > 0) {
      best = &k;
    }
  }
  if (best == nullptr) {
    return absl::NotFoundError(
        "the profile lists no installed kernel with a kernel image and a "
        "module tree");
  }
  return best->version();
}

StatusOr<BootTemplate> BootTemplates::Import(const std::string& name,
                                             const std::string& from_backup_id,
                                             const std::string& description,
                                             const std::string& created_by,
                                             const AuditEntry* audit) {
  CAIRN_RETURN_IF_ERROR(ValidateCatalogId(name, "template name"));
  if (description.size() > 1024) {
    return absl::InvalidArgumentError(
        "a template description is at most 1024 bytes");
  }
  CAIRN_ASSIGN_OR_RETURN(BackupEntry image,
                         catalog_->GetBackup(from_backup_id));
  if (image.status != BackupStatus::kAvailable) {
    return absl::FailedPreconditionError(StrCat(
        "image '", image.backup_id, "' is ", BackupStatusName(image.status)));
  }
  auto profile = profiles_->ForBackup(image.backup_id);
  if (!profile.ok()) {
    return absl::FailedPreconditionError(StrCat(
        "image '", image.backup_id,
        "' has no recorded hardware profile, so its kernel is unknown (",
        ToStd(profile.status().message()),
        "); back the template machine up with an agent, which records one"));
  }
  auto kernel = TemplateKernel(profile->profile);
  if (!kernel.ok()) {
    return absl::FailedPreconditionError(StrCat(
        "image '", image.backup_id,
        "' cannot be a boot template: ", ToStd(kernel.status().message())));
  }
  BootTemplate t;
  t.name = name;
  t.image_id = image.backup_id;
  t.description = description;
  t.kernel_version = *kernel;
  t.os_name = profile->profile.os().pretty_name();
  t.profile_sha256 = profile->sha256_hex;
  t.image_size = image.image_size;
  t.created_by = created_by;
  CAIRN_RETURN_IF_ERROR(catalog_->CreateTemplate(t, audit));
  return catalog_->GetTemplate(name);
}

}  // namespace cairn
