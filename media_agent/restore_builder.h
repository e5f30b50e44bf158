// RestoreBuilder: makes a customized bootable image of one backup for one
// target, in the media agent's own store (DESIGN.md section 5;
// docs/restore-build.md). The phases:
//   1. export: the backup is served read-only by nbdkit with Cairn's plugin
//      (media_agent/nbd_export.h) on a private Unix socket, without the
//      repository lock (the caller holds it); so is the boot template's
//      image when the plan boots its kernel (plan.template_kernel.image_id,
//      an image of the same store read with the same key);
//   2. customize: ImageCustomizer edits a qcow2 overlay over the export;
//   3. commit: WriteDerivedImage stores the overlay's image as a new
//      "customized" image sharing every unchanged chunk with the backup;
//      its manifest is written last.
// The export and the private work directory (the overlay) are removed
// whatever happens; nothing is written to the store before phase 3, and a
// failure in phase 3 leaves at most unreferenced chunks (garbage
// collection removes them), never a manifest.
//
// Thread safety: Build() may run concurrently for different new ids; the
// repository serializes its own state.
#ifndef CAIRN_MEDIA_AGENT_RESTORE_BUILDER_H_
#define CAIRN_MEDIA_AGENT_RESTORE_BUILDER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "cairn/v1/restore_build.pb.h"
#include "common/data_key.h"
#include "common/manifest.h"
#include "common/status.h"
#include "media_agent/derived_image.h"
#include "media_agent/repository.h"

namespace cairn {

struct RestoreBuildOptions {
  std::string backup_id;  // the backup to customize
  std::string new_id;     // id of the customized image (must be free)
  // The store's data key when the backup is encrypted. Not owned.
  const DataKey* key = nullptr;
  v1::CustomizationPlan plan;   // plan.source_backup_id, if set, must match
  int64_t created_unix_us = 0;  // 0: now
  // Parent of the private work directory (the overlay: as large as what the
  // build changes); empty: $TMPDIR or /tmp.
  std::string work_parent;
  // Phase changes ("export", "customize: initramfs", "commit") and the
  // commit's progress (bytes done, image size; 0/0 outside the commit).
  std::function<void(std::string_view phase, uint64_t done, uint64_t total)>
      progress;
  // Polled between phases (after the export, after the customization):
  // true stops the build with Cancelled before anything is stored.
  std::function<bool()> cancelled;
};

struct RestoreBuildResult {
  Manifest manifest;  // the committed customized image
  DerivedImageStats stats;
  v1::CustomizationReport report;
  double export_seconds = 0;
  double customize_seconds = 0;
  double commit_seconds = 0;
};

// Errors: NotFound for an unknown backup or boot template image (checked
// before the appliance starts); InvalidArgument for a plan made
// for another backup or a bad new id; AlreadyExists when new_id is taken
// (checked first, before any work); the export's, ImageCustomizer's and
// WriteDerivedImage's errors otherwise.
StatusOr<RestoreBuildResult> BuildCustomizedImage(
    Repository& repo, const RestoreBuildOptions& options);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_RESTORE_BUILDER_H_
