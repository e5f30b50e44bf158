// ImageExports: hypervisor disks (raw, qcow2, VMDK, VHDX) of the images the
// embedded media agent holds, for Admin.ExportImage / `cairnctl export`
// (DESIGN.md section 5, "Delivery"; docs/export.md). Knows nothing of gRPC:
// Export() converts an image with ExportImage (media_agent/image_export.h:
// qemu-img reading the image's NBD export) into a private temporary
// directory under `work_dir`; the caller streams the file and drops the
// result, which removes it. The file holds the decrypted disk: the
// directory is mode 0700 and the file 0600.
//
// Thread safety: thread-safe; exports run concurrently (each has its own
// nbdkit and files) and only read the store.
#ifndef CAIRN_SERVER_IMAGE_EXPORTS_H_
#define CAIRN_SERVER_IMAGE_EXPORTS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "common/temp_dir.h"
#include "media_agent/image_export.h"
#include "server/catalog.h"

namespace cairn {

class Repository;

struct HypervisorDisk {
  std::unique_ptr<TempDir> dir;  // holds the file; removed with this object
  ImageExportResult result;      // result.destination: the file
};

class ImageExports {
 public:
  // Nothing is owned. `repository` null: no embedded media agent (every
  // export is Unimplemented). `data_key`: the policy's key or empty.
  ImageExports(const Catalog* catalog, Repository* repository,
               std::string data_key, std::string work_dir)
      : catalog_(catalog),
        repository_(repository),
        data_key_(std::move(data_key)),
        work_dir_(std::move(work_dir)) {}

  // InvalidArgument for an unknown format; NotFound for an unknown image;
  // FailedPrecondition when it is not available; Unimplemented when a
  // separate media agent holds it; Cancelled once `cancelled` returns
  // true; ExportImage's errors otherwise.
  StatusOr<HypervisorDisk> Export(
      const std::string& backup_id, const std::string& format,
      const std::function<void(uint64_t done, uint64_t total)>& progress,
      const std::function<bool()>& cancelled) const;

 private:
  const Catalog* const catalog_;
  Repository* const repository_;
  const std::string data_key_;
  const std::string work_dir_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_IMAGE_EXPORTS_H_
