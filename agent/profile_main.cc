// cairn-profile: collect a machine's hardware profile and diff two profiles,
// with no server (DESIGN.md section 5; docs/formats/hardware-profile.md).
//
//   cairn-profile collect [--root DIR | --image PATH [--format FMT]]
//                         [--text|--json] [--out FILE] [--full]
//                         [--no-initramfs]
//   cairn-profile diff --source FILE --target FILE [--json]
//                      [--nic-map OLD=NEW]... [--source-modules DIR]
//                      [--source-kernel VERSION] [--resolve-conflicts CHOICE]
//   cairn-profile plan --source FILE --target FILE [--backup ID]
//                      [--target-name NAME] [--drop-guest-tools]
//                      [--template-profile FILE --template-image ID
//                       [--template-name NAME]]
//                      [--out PLAN.json] [--json] (and diff's options)
//   cairn-profile show FILE [--json] [--full]
//
// Exit codes are common/cli.h's: 0 ok (for diff: a plan with no blockers),
// 1 diff (or plan) found blockers, 2 usage or invalid input, 3 not found, 4
// damaged data, 5 precondition, 10 internal.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "agent/offline_profile_collector.h"
#include "agent/profile_collector.h"
#include "common/cli.h"
#include "common/hardware_profile.h"
#include "common/strings.h"
#include "server/customization_plan.h"
#include "server/profile_diff.h"

namespace {

using cairn::Status;
using cairn::StatusOr;

struct Args {
  std::string command;
  bool json = false;
  bool text = false;
  bool full = false;
  bool no_initramfs = false;
  std::string root = "/";
  std::string image, format;
  std::string out;
  std::string source, target, file;
  std::vector<std::string> nic_map;
  std::string source_modules, source_kernel, resolve;
  std::string backup, target_name;
  bool drop_guest_tools = false;
  std::string template_profile, template_image, template_name;
};

int Fail(const Status& s, bool json) {
  return cairn::cli::ReportError(s, json);
}

int RunCollect(const Args& a) {
  StatusOr<cairn::v1::HardwareProfile> p;
  if (!a.image.empty()) {
    cairn::OfflineCollectOptions o;
    o.format = a.format;
    o.read_initramfs = !a.no_initramfs;
    p = cairn::CollectOfflineProfile(a.image, o);
  } else {
    cairn::CollectOptions o;
    o.root = a.root;
    o.read_initramfs = !a.no_initramfs;
    p = cairn::CollectHardwareProfile(o);
  }
  if (!p.ok()) return Fail(p.status(), a.json);
  if (!a.out.empty()) {
    // A file is what `diff` reads: binary unless --json, always with the
    // module indices.
    std::string bytes;
    if (a.json) {
      auto j =
          cairn::HardwareProfileToJson(*p, /*include_module_indices=*/true);
      if (!j.ok()) return Fail(j.status(), true);
      bytes = *j;
    } else {
      bytes = cairn::EncodeHardwareProfileFile(*p);
    }
    if (Status s = cairn::WriteFileAtomically(a.out, bytes); !s.ok()) {
      return Fail(s, a.json);
    }
    if (a.json) {
      cairn::cli::PrintJson({{"written", a.out}, {"bytes", bytes.size()}});
    } else if (a.text) {
      std::cout << cairn::RenderHardwareProfileText(*p);
    } else {
      std::printf("wrote %s (%zu bytes)\n", a.out.c_str(), bytes.size());
    }
    return 0;
  }
  if (a.json) {
    auto j = cairn::HardwareProfileToJson(*p, a.full);
    if (!j.ok()) return Fail(j.status(), true);
    std::cout << *j;
  } else {
    std::cout << cairn::RenderHardwareProfileText(*p);
  }
  return 0;
}

int RunShow(const Args& a) {
  auto p = cairn::ReadHardwareProfileFile(a.file);
  if (!p.ok()) return Fail(p.status(), a.json);
  if (a.json) {
    auto j = cairn::HardwareProfileToJson(*p, a.full);
    if (!j.ok()) return Fail(j.status(), true);
    std::cout << *j;
  } else {
    std::cout << cairn::RenderHardwareProfileText(*p);
  }
  return 0;
}

struct Diffed {
  cairn::v1::HardwareProfile source, target;
  cairn::v1::ProfileDiffPlan plan;
};

// Reads --source and --target and diffs them with the diff options.
StatusOr<Diffed> Diff(const Args& a) {
  cairn::ProfileDiffOptions o;
  for (const auto& m : a.nic_map) {
    size_t eq = m.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
      return absl::InvalidArgumentError(cairn::StrCat(
          "--nic-map '", m, "': expected OLD=NEW (NIC names or MACs)"));
    }
    o.nic_map.emplace_back(m.substr(0, eq), m.substr(eq + 1));
  }
  o.source_module_dir = a.source_modules;
  o.source_kernel = a.source_kernel;
  o.conflict_choice = a.resolve;
  Diffed d;
  CAIRN_ASSIGN_OR_RETURN(d.source, cairn::ReadHardwareProfileFile(a.source));
  CAIRN_ASSIGN_OR_RETURN(d.target, cairn::ReadHardwareProfileFile(a.target));
  CAIRN_ASSIGN_OR_RETURN(d.plan, cairn::ProfileDiff(d.source, d.target, o));
  return d;
}

int RunDiff(const Args& a) {
  auto d = Diff(a);
  if (!d.ok()) return Fail(d.status(), a.json);
  const cairn::v1::ProfileDiffPlan* plan = &d->plan;
  if (a.json) {
    auto j = cairn::ProfileDiffToJson(*plan);
    if (!j.ok()) return Fail(j.status(), true);
    std::cout << *j;
  } else {
    std::cout << cairn::RenderProfileDiffText(*plan);
  }
  return plan->blockers().empty() ? 0 : 1;
}

int RunPlan(const Args& a) {
  auto d = Diff(a);
  if (!d.ok()) return Fail(d.status(), a.json);
  cairn::CustomizationPlanOptions o;
  o.source_backup_id = a.backup;
  o.source_profile_sha256 = cairn::ProfileSha256Hex(d->source);
  o.target_profile_sha256 = cairn::ProfileSha256Hex(d->target);
  o.target = a.target_name.empty()
                 ? cairn::StrCat("profile:", o.target_profile_sha256)
                 : a.target_name;
  o.drop_guest_tools = a.drop_guest_tools;
  cairn::v1::HardwareProfile template_profile;
  if (a.template_profile.empty() != a.template_image.empty() ||
      (!a.template_name.empty() && a.template_profile.empty())) {
    return Fail(absl::InvalidArgumentError(
                    "a boot template is given by --template-profile FILE and "
                    "--template-image ID together (--template-name only "
                    "with them)"),
                a.json);
  }
  if (!a.template_profile.empty()) {
    auto t = cairn::ReadHardwareProfileFile(a.template_profile);
    if (!t.ok()) return Fail(t.status(), a.json);
    template_profile = *std::move(t);
    o.template_profile = &template_profile;
    o.template_image_id = a.template_image;
    o.template_name = a.template_name;
    o.template_profile_sha256 = cairn::ProfileSha256Hex(template_profile);
  }
  auto plan = cairn::PlanCustomization(d->source, d->target, d->plan, o);
  if (!plan.ok()) return Fail(plan.status(), a.json);
  auto j = cairn::CustomizationPlanToJson(*plan);
  if (!j.ok()) return Fail(j.status(), a.json);
  if (!a.out.empty()) {
    if (Status s = cairn::WriteFileAtomically(a.out, *j); !s.ok()) {
      return Fail(s, a.json);
    }
  }
  if (a.json) {
    std::cout << *j;
  } else {
    std::cout << cairn::RenderProfileDiffText(d->plan) << "\n"
              << cairn::RenderCustomizationPlanText(*plan);
    if (!a.out.empty()) std::cout << "Plan written to " << a.out << "\n";
  }
  return plan->blockers().empty() ? 0 : 1;
}

// The options `diff` and `plan` share: the two profiles, --json and the
// diff's choices.
void AddDiffOptions(CLI::App* cmd, Args* a) {
  cmd->add_option("--source", a->source, "Source profile file")->required();
  cmd->add_option("--target", a->target, "Target profile file")->required();
  cmd->add_flag("--json", a->json, "JSON output");
  cmd->add_option("--nic-map", a->nic_map,
                  "Pair a source NIC with a target NIC: OLD=NEW, names or "
                  "MACs (repeatable); others are paired in PCI order");
  cmd->add_option("--source-modules", a->source_modules,
                  "Match modules with libkmod in this module directory "
                  "instead of the indices recorded in the source profile");
  cmd->add_option("--source-kernel", a->source_kernel,
                  "The source kernel version the restored system boots");
  cmd->add_option("--resolve-conflicts,--conflict-choice", a->resolve,
                  "Explicit choice for devices the source kernel cannot "
                  "drive: use-template-kernel or proceed-without-driver");
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{
      "cairn-profile: collect hardware profiles and diff them (no server "
      "needed). See docs/formats/hardware-profile.md."};
  app.name("cairn-profile");
  app.require_subcommand(1);

  CLI::App* collect = app.add_subcommand(
      "collect",
      "Collect the hardware profile of this machine, of a "
      "recorded tree with --root, or of a disk image with --image");
  CLI::Option* root_opt =
      collect->add_option("--root", a.root,
                          "Root directory to read /sys, /proc, /etc, /boot and "
                          "/lib/modules under (default /)");
  collect
      ->add_option("--image", a.image,
                   "Profile the operating system in this disk image offline "
                   "through libguestfs (read-only; hardware fields stay "
                   "empty)")
      ->excludes(root_opt);
  collect->add_option("--format", a.format,
                      "Image format for --image (raw, qcow2, ...; default: "
                      "detected)");
  collect->add_flag("--json", a.json, "JSON output (protobuf JSON mapping)");
  collect->add_flag("--text", a.text, "Readable text output (the default)");
  collect->add_option("--out", a.out,
                      "Write the profile to FILE (binary, or JSON with "
                      "--json) for `diff`");
  collect->add_flag("--full", a.full,
                    "Include the module indices in JSON printed to stdout");
  collect->add_flag("--no-initramfs", a.no_initramfs,
                    "Do not read initramfs images");

  CLI::App* diff = app.add_subcommand(
      "diff",
      "Compare a source profile (the backed-up machine) with a "
      "target profile and print the restore plan");
  AddDiffOptions(diff, &a);

  CLI::App* plan = app.add_subcommand(
      "plan",
      "Diff two profiles and print the restore build plan: the exact "
      "changes that make the source's image boot on the target "
      "(docs/restore-build.md)");
  AddDiffOptions(plan, &a);
  plan->add_option("--backup", a.backup, "The backup the plan is for");
  plan->add_option("--target-name", a.target_name,
                   "Name of the target in the plan (default: "
                   "profile:SHA256)");
  plan->add_flag("--drop-guest-tools", a.drop_guest_tools,
                 "Disable guest tools for a hypervisor the target is not");
  plan->add_option("--out", a.out,
                   "Write the plan (JSON) for `cairn-media restore build`");
  plan->add_option("--template-profile", a.template_profile,
                   "Boot template's hardware profile (`collect --image`): "
                   "its kernel is booted for devices the source kernel "
                   "cannot drive, when --conflict-choice use-template-kernel");
  plan->add_option("--template-image", a.template_image,
                   "The boot template's image id in the media agent's store "
                   "(with --template-profile)");
  plan->add_option("--template-name", a.template_name,
                   "The boot template's catalog name (shown in the plan)");

  CLI::App* show = app.add_subcommand("show", "Print a profile file");
  show->add_option("FILE", a.file, "Profile file")->required();
  show->add_flag("--json", a.json, "JSON output");
  show->add_flag("--full", a.full, "Include the module indices in JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (collect->parsed()) {
    if (!a.format.empty() && a.image.empty()) {
      return Fail(absl::InvalidArgumentError("--format needs --image"), a.json);
    }
    if (a.json && a.text && a.out.empty()) {
      return Fail(
          absl::InvalidArgumentError("--json and --text exclude each other"),
          true);
    }
    return RunCollect(a);
  }
  if (diff->parsed()) return RunDiff(a);
  if (plan->parsed()) return RunPlan(a);
  return RunShow(a);
}
