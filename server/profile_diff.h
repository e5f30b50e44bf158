// ProfileDiff: what differs between the machine that was backed up (the
// source profile) and the machine being restored to (the target profile),
// as a plan the user sees before anything is written (DESIGN.md section 5;
// the plan's fields are in proto/cairn/v1/profile.proto, its text and JSON
// forms in docs/formats/hardware-profile.md).
//
// The plan covers:
//   - modules: every target device bound to a driver has its modalias
//     matched against the SOURCE kernel's aliases (the kernel the restored
//     system boots), with dependencies from modules.dep; each module is
//     built in, already in the initramfs, to be added to the initramfs (on
//     the path to the root disk), in the module tree (loaded after root is
//     mounted), or absent (a DeviceConflict the user must resolve
//     explicitly; "use-template-kernel" is one option, never a default);
//   - removals: drivers of source hardware that is gone, and guest tools
//     for a hypervisor the target is not;
//   - NIC mapping, old to new (explicit pairs, else PCI order), with what
//     happens to each configuration that names the old NIC;
//   - disk changes: size (grow; shrink only when the partitions fit),
//     sector size, controller and the device names and references that
//     change with it;
//   - boot mode change (BIOS <-> UEFI) with its requirements.
// Anything that must be settled before a restore can go ahead is listed in
// ProfileDiffPlan.blockers.
//
// Thread safety: pure functions.
#ifndef CAIRN_SERVER_PROFILE_DIFF_H_
#define CAIRN_SERVER_PROFILE_DIFF_H_

#include <string>
#include <utility>
#include <vector>

#include "cairn/v1/profile.pb.h"
#include "common/status.h"

namespace cairn {

struct ProfileDiffOptions {
  // Explicit NIC pairs: source NIC (name or MAC) -> target NIC (name or
  // MAC). Unpaired NICs are then paired in PCI address order.
  std::vector<std::pair<std::string, std::string>> nic_map;
  // When set, match modules with libkmod against this directory (the
  // source kernel's module tree with depmod's binary indices) instead of
  // the indices recorded in the source profile.
  std::string source_module_dir;
  // The kernel the restored system boots; default: the source's running
  // kernel when it is installed, else the newest installed kernel.
  std::string source_kernel;
  // The user's explicit choice for every device conflict: "" (undecided:
  // each conflict is a blocker), "use-template-kernel" or
  // "proceed-without-driver".
  std::string conflict_choice;
};

inline constexpr char kUseTemplateKernel[] = "use-template-kernel";
inline constexpr char kProceedWithoutDriver[] = "proceed-without-driver";

// InvalidArgument for a hostile or inconsistent input (a modalias with glob
// characters, a --nic-map naming no NIC, an unknown conflict choice);
// FailedPrecondition when the source kernel's module indices are not
// available.
StatusOr<v1::ProfileDiffPlan> ProfileDiff(const v1::HardwareProfile& source,
                                          const v1::HardwareProfile& target,
                                          const ProfileDiffOptions& options);

std::string RenderProfileDiffText(const v1::ProfileDiffPlan& plan);

// The plan as JSON (nlohmann-json): the protobuf field names, enums as
// their lower-case short names ("add_to_initramfs", "uefi"), plus
// "format": "cairn.profile_diff_plan" and "ready": no blockers.
StatusOr<std::string> ProfileDiffToJson(const v1::ProfileDiffPlan& plan);

}  // namespace cairn

#endif  // CAIRN_SERVER_PROFILE_DIFF_H_
