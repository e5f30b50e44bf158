// BootTemplates: generic boot templates (DESIGN.md section 5,
// docs/restore-build.md). A template is an image of the catalog - typically
// a backup of a reference machine with a stock kernel and its full module
// tree - promoted under a name; its image stays in the chunk store and its
// hardware profile (recorded with the image) gives the kernel a restore
// build installs when the user explicitly chooses the template's kernel.
// Knows nothing of gRPC.
//
// Thread safety: thread-safe (the catalog is; no state of its own).
#ifndef CAIRN_SERVER_BOOT_TEMPLATES_H_
#define CAIRN_SERVER_BOOT_TEMPLATES_H_

#include <string>

#include "cairn/v1/profile.pb.h"
#include "common/status.h"
#include "server/catalog.h"
#include "server/client_profiles.h"

namespace cairn {

// The kernel a template provides: the profile's running kernel when its
// module tree is present, else the highest version (strverscmp) of the
// installed kernels with a module tree and a kernel image. NotFound if none.
StatusOr<std::string> TemplateKernel(const v1::HardwareProfile& profile);

class BootTemplates {
 public:
  // Neither is owned; both must outlive this object.
  BootTemplates(Catalog* catalog, const ClientProfiles* profiles)
      : catalog_(catalog), profiles_(profiles) {}

  // Makes image `from_backup_id` the template `name`. InvalidArgument for a
  // bad name; NotFound for an unknown image; FailedPrecondition when the
  // image is not available, has no recorded profile, or its profile has no
  // usable kernel; AlreadyExists for a taken name. `audit` is written with
  // the record.
  StatusOr<BootTemplate> Import(const std::string& name,
                                const std::string& from_backup_id,
                                const std::string& description,
                                const std::string& created_by,
                                const AuditEntry* audit = nullptr);

 private:
  Catalog* const catalog_;
  const ClientProfiles* const profiles_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_BOOT_TEMPLATES_H_
