// PlanCustomization: turns a ProfileDiffPlan (what differs between the
// backed-up machine and the target) into the CustomizationPlan a restore
// build carries out (restore_build.proto; docs/restore-build.md): the exact
// changes, in order, that `cairnctl restore plan` shows and
// ImageCustomizer (media_agent/image_customizer.h) makes.
//
// Rules:
//  - kernel: the source's (diff.source_kernel); the restored system boots
//    it directly. Its initramfs gets every module the diff places
//    "add_to_initramfs" and is rebuilt.
//  - template kernel: only when the user chose "use-template-kernel" for a
//    device conflict (the source kernel lacks its driver). Without a
//    template (options.template_profile) that is a blocker. With one, the
//    restored system boots the template's kernel (its running kernel, else
//    its newest installed one): plan.kernel_version becomes it,
//    plan.template_kernel names it, and the initramfs modules are those the
//    target's boot path needs with THAT kernel (the template profile
//    diffed against the target: its boot-critical modules that are not
//    built in). A device the template kernel cannot drive either is a
//    blocker. The boot loader configuration is regenerated so GRUB boots it.
//  - device references: rewritten to UUID= whenever the source has
//    references by device name, by-path or by-id (fstab, crypttab, the
//    boot loader) - they break when the controller changes, and are fragile
//    even when it does not. The boot loader configuration is regenerated
//    when its own references are among them.
//  - NICs: each mapping whose name or MAC changes.
//  - disk: the first disk's sizes (grow when larger; when smaller, shrink
//    the last partition and its file system - whether the data fits is
//    checked when the build runs).
//  - guest tools for a hypervisor the target is not: disabled only with
//    `drop_guest_tools` (the diff lists them as removals either way).
//  - blockers: the diff's (but its "smaller than the partitions", which
//    the shrink replaces), plus what this version cannot build: a UEFI ->
//    BIOS change, a smaller disk whose partitions other than the last do
//    not fit or whose last partition is not ext2/3/4 (from the profile's
//    geometry, when it has it), the template-kernel choice without a
//    template (or with one whose kernel lacks a needed driver too).
//
// Thread safety: pure functions.
#ifndef CAIRN_SERVER_CUSTOMIZATION_PLAN_H_
#define CAIRN_SERVER_CUSTOMIZATION_PLAN_H_

#include <string>

#include "cairn/v1/profile.pb.h"
#include "cairn/v1/restore_build.pb.h"
#include "common/status.h"

namespace cairn {

struct CustomizationPlanOptions {
  std::string source_backup_id;
  std::string target;  // "client:ID" or "profile:SHA256"
  std::string source_profile_sha256;
  std::string target_profile_sha256;
  bool drop_guest_tools = false;
  // The boot template for a "use-template-kernel" choice: its hardware
  // profile (not owned; must outlive the call), catalog name, image id in
  // the media agent's store and profile hash (computed when empty). Unused
  // unless a conflict chose the template kernel.
  const v1::HardwareProfile* template_profile = nullptr;
  std::string template_name;
  std::string template_image_id;
  std::string template_profile_sha256;
};

// Errors: InvalidArgument when the template profile cannot be diffed
// against the target (a hostile modalias), FailedPrecondition when it lists
// no kernel or its kernel's module indices are missing.
StatusOr<v1::CustomizationPlan> PlanCustomization(
    const v1::HardwareProfile& source, const v1::HardwareProfile& target,
    const v1::ProfileDiffPlan& diff, const CustomizationPlanOptions& options);

// The hex SHA-256 of a profile's canonical form (serialized, without its
// collection time): the same hardware reported twice hashes the same. Names
// a target in plans and caches.
std::string ProfileSha256Hex(const v1::HardwareProfile& profile);

// The plan as text: its steps, then blockers ("Ready to build." when none).
std::string RenderCustomizationPlanText(const v1::CustomizationPlan& plan);

// The plan as JSON (protobuf's JSON mapping with the proto field names)
// and back. InvalidArgument for malformed JSON.
StatusOr<std::string> CustomizationPlanToJson(
    const v1::CustomizationPlan& plan);
StatusOr<v1::CustomizationPlan> CustomizationPlanFromJson(
    const std::string& json);

}  // namespace cairn

#endif  // CAIRN_SERVER_CUSTOMIZATION_PLAN_H_
