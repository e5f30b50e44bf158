#include "server/profile_diff.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "common/hardware_profile.h"
#include "common/module_index.h"
#include "common/strings.h"

namespace cairn {
namespace {

constexpr char kEspGuid[] = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
constexpr char kBiosBootGuid[] = "21686148-6449-6e6f-744e-656564454649";

bool StartsWith(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Picks the kernel the restored system boots.
StatusOr<const v1::InstalledKernel*> SourceKernel(
    const v1::HardwareProfile& source, const std::string& wanted) {
  const v1::InstalledKernel* best = nullptr;
  for (const auto& k : source.kernels()) {
    if (!wanted.empty()) {
      if (k.version() == wanted) return &k;
      continue;
    }
    if (k.running()) return &k;
    // Debian version strings compare well enough by string for "newest" among
    // the few installed kernels; ties are not expected.
    if (best == nullptr || k.version() > best->version()) best = &k;
  }
  if (!wanted.empty()) {
    return absl::InvalidArgumentError(
        StrCat("source kernel ", wanted, " is not installed on the source"));
  }
  if (best == nullptr) {
    return absl::FailedPreconditionError(
        "the source profile lists no installed kernel");
  }
  return best;
}

std::string PartitionName(std::string_view disk, uint32_t number) {
  bool digit_end =
      !disk.empty() && std::isdigit(static_cast<unsigned char>(disk.back()));
  return StrCat(disk, digit_end ? "p" : "", number);
}

// A target device that needs a driver.
struct NeededDevice {
  std::string label;  // "0000:00:03.0 virtio1"
  std::string modalias;
  std::string driver;  // bound on the target
  bool boot_critical;
};

class Planner {
 public:
  Planner(const v1::HardwareProfile& s, const v1::HardwareProfile& t,
          const ProfileDiffOptions& o, v1::ProfileDiffPlan* plan)
      : src_(s), tgt_(t), opt_(o), plan_(plan) {}

  Status Run() {
    if (!opt_.conflict_choice.empty() &&
        opt_.conflict_choice != kUseTemplateKernel &&
        opt_.conflict_choice != kProceedWithoutDriver) {
      return absl::InvalidArgumentError(
          StrCat("unknown conflict choice '", opt_.conflict_choice, "' (use ",
                 kUseTemplateKernel, " or ", kProceedWithoutDriver, ")"));
    }
    plan_->set_format_version(1);
    CAIRN_RETURN_IF_ERROR(PlanModules());
    PlanRemovals();
    CAIRN_RETURN_IF_ERROR(PlanNics());
    PlanDisks();
    PlanBootMode();
    return absl::OkStatus();
  }

 private:
  // ---------------------------------------------------------------- modules
  Status PlanModules() {
    CAIRN_ASSIGN_OR_RETURN(kernel_, SourceKernel(src_, opt_.source_kernel));
    plan_->set_source_kernel(kernel_->version());
    std::unique_ptr<ModuleIndex>& index = index_;
    if (!opt_.source_module_dir.empty()) {
      CAIRN_ASSIGN_OR_RETURN(index,
                             ModuleIndexFromKmod(opt_.source_module_dir));
    } else {
      auto r = ModuleIndexFromFiles(kernel_->module_index());
      if (!r.ok()) {
        return Status(r.status().code(),
                      StrCat("source kernel ", kernel_->version(), ": ",
                             ToStd(r.status().message())));
      }
      index = std::move(*r);
    }
    plan_->set_module_index_backend(index->Backend());
    std::set<std::string> initramfs(kernel_->initramfs().modules().begin(),
                                    kernel_->initramfs().modules().end());
    if (!kernel_->has_initramfs()) {
      plan_->add_notes(StrCat("source kernel ", kernel_->version(),
                              " has no initramfs: boot-critical drivers must "
                              "be built in, or an initramfs must be created"));
    }

    // Controllers of the target's disks: their PCI functions and everything
    // below them are on the path to the root file system.
    std::set<std::string> critical_pci;
    for (const auto& d : tgt_.disks()) {
      if (!d.removable() && !d.controller_pci_address().empty()) {
        critical_pci.insert(d.controller_pci_address());
      }
    }
    std::vector<NeededDevice> devices;
    size_t unbound = 0;
    for (const auto& pci : tgt_.pci_devices()) {
      bool critical = critical_pci.count(pci.address()) > 0;
      auto consider = [&](const std::string& label, const std::string& modalias,
                          const std::string& driver) -> Status {
        if (modalias.empty()) return absl::OkStatus();
        Status v = ValidateModalias(modalias);
        if (!v.ok()) {
          return absl::InvalidArgumentError(
              StrCat("target device ", label, ": ", ToStd(v.message())));
        }
        if (driver.empty()) {
          ++unbound;
          return absl::OkStatus();
        }
        devices.push_back(NeededDevice{label, modalias, driver, critical});
        return absl::OkStatus();
      };
      CAIRN_RETURN_IF_ERROR(
          consider(pci.address(), pci.modalias(), pci.driver()));
      for (const auto& c : pci.children()) {
        CAIRN_RETURN_IF_ERROR(consider(StrCat(pci.address(), " ", c.name()),
                                       c.modalias(), c.driver()));
      }
    }
    if (unbound > 0) {
      plan_->add_notes(StrCat(unbound,
                              " target device(s) have no driver bound on the "
                              "target either; they are not matched"));
    }

    for (const NeededDevice& dev : devices) {
      CAIRN_ASSIGN_OR_RETURN(auto candidates, index->Lookup(dev.modalias));
      std::string want = NormalizeModuleName(dev.driver);
      std::vector<KernelModule> chosen;
      for (const auto& c : candidates) {
        if (c.name == want) chosen = {c};
      }
      if (chosen.empty()) chosen = candidates;
      if (chosen.empty()) {
        CAIRN_ASSIGN_OR_RETURN(auto by_name, index->Find(want));
        if (by_name.has_value()) chosen = {*by_name};
      }
      std::string need = StrCat(dev.label, " (", dev.driver, " on the target; ",
                                dev.modalias, ")");
      if (chosen.empty()) {
        AddConflict(dev,
                    StrCat("no module of source kernel ", kernel_->version(),
                           " matches this device's modalias, and it has no "
                           "module called ",
                           want));
        continue;
      }
      for (const auto& m : chosen) {
        AddModule(*index, m, need, dev.boot_critical, initramfs, dev);
      }
    }
    std::sort(plan_->mutable_modules()->begin(),
              plan_->mutable_modules()->end(),
              [](const auto& a, const auto& b) {
                if (a.boot_critical() != b.boot_critical())
                  return a.boot_critical();
                return a.module() < b.module();
              });
    for (const auto& c : plan_->conflicts()) {
      if (c.chosen().empty()) {
        plan_->add_blockers(
            StrCat("device ", c.device(),
                   ": the source kernel cannot drive it; choose "
                   "explicitly: ",
                   kUseTemplateKernel, " or ", kProceedWithoutDriver));
      }
    }
    return absl::OkStatus();
  }

  void AddConflict(const NeededDevice& dev, std::string reason) {
    for (const auto& c : plan_->conflicts()) {
      if (c.device() == dev.label) return;
    }
    v1::DeviceConflict* c = plan_->add_conflicts();
    c->set_device(dev.label);
    c->set_modalias(dev.modalias);
    c->set_target_driver(dev.driver);
    c->set_reason(dev.boot_critical
                      ? StrCat(reason,
                               "; the device is on the path to the "
                               "root disk, so the restored system "
                               "cannot boot with its own kernel")
                      : std::move(reason));
    c->add_options(kUseTemplateKernel);
    c->add_options(kProceedWithoutDriver);
    c->set_chosen(opt_.conflict_choice);
  }

  v1::NeededModule* ModuleEntry(const std::string& name) {
    for (auto& m : *plan_->mutable_modules()) {
      if (m.module() == name) return &m;
    }
    v1::NeededModule* m = plan_->add_modules();
    m->set_module(name);
    return m;
  }

  void AddModule(const ModuleIndex& index, const KernelModule& km,
                 const std::string& needed_by, bool critical,
                 const std::set<std::string>& initramfs,
                 const NeededDevice& dev) {
    std::vector<KernelModule> all = {km};
    auto deps = index.Dependencies(km.name);
    std::vector<std::string> dep_names =
        deps.ok() ? *deps : std::vector<std::string>{};
    for (const auto& d : dep_names) {
      auto f = index.Find(d);
      all.push_back(f.ok() && f->has_value() ? **f
                                             : KernelModule{d, false, ""});
    }
    for (size_t i = 0; i < all.size(); ++i) {
      const KernelModule& m = all[i];
      v1::NeededModule* e = ModuleEntry(m.name);
      std::string by = i == 0 ? needed_by : StrCat("module ", km.name);
      if (std::find(e->needed_by().begin(), e->needed_by().end(), by) ==
          e->needed_by().end()) {
        e->add_needed_by(by);
      }
      if (i == 0) {
        e->clear_depends_on();
        for (const auto& d : dep_names) e->add_depends_on(d);
      }
      e->set_boot_critical(e->boot_critical() || critical);
      if (!m.path.empty()) e->set_module_path(m.path);
      v1::ModulePlacement p;
      if (m.builtin) {
        p = v1::MODULE_PLACEMENT_BUILTIN;
      } else if (m.path.empty()) {
        p = v1::MODULE_PLACEMENT_ABSENT;
      } else if (initramfs.count(m.name)) {
        p = v1::MODULE_PLACEMENT_IN_INITRAMFS;
      } else if (e->boot_critical()) {
        p = v1::MODULE_PLACEMENT_ADD_TO_INITRAMFS;
      } else {
        p = v1::MODULE_PLACEMENT_IN_MODULE_TREE;
      }
      e->set_placement(p);
      if (p == v1::MODULE_PLACEMENT_ABSENT) {
        AddConflict(dev, StrCat("module ", m.name,
                                " is named by the source kernel's aliases but "
                                "is not in its module tree"));
      }
    }
  }

  // --------------------------------------------------------------- removals
  // The source kernel's module for a device: the alias match named like
  // the bound driver, else the only match, else a module named like the
  // driver, else the driver name itself.
  std::string ModuleFor(const std::string& modalias,
                        const std::string& driver) {
    std::string want = NormalizeModuleName(driver);
    if (!modalias.empty()) {
      auto c = index_->Lookup(modalias);
      if (c.ok()) {
        for (const auto& m : *c) {
          if (m.name == want) return want;
        }
        if (c->size() == 1) return c->front().name;
      }
    }
    return want;
  }

  void PlanRemovals() {
    std::set<std::string> needed;
    for (const auto& m : plan_->modules()) needed.insert(m.module());
    std::set<std::string> initramfs(kernel_->initramfs().modules().begin(),
                                    kernel_->initramfs().modules().end());
    std::set<std::string> done;
    auto consider = [&](const std::string& label, const std::string& modalias,
                        const std::string& driver) {
      if (driver.empty()) return;
      std::string n = ModuleFor(modalias, driver);
      if (needed.count(n) || !done.insert(n).second) return;
      v1::RemovalItem* r = plan_->add_removals();
      r->set_what(StrCat("module ", n,
                         n == NormalizeModuleName(driver)
                             ? std::string()
                             : StrCat(" (driver ", driver, ")")));
      r->set_reason(StrCat("bound to source device ", label,
                           "; no target device needs it"));
      r->set_action(initramfs.count(n)
                        ? "drop-from-initramfs (optional: an unused module in "
                          "the initramfs is harmless)"
                        : "none (stays in the module tree; nothing binds it)");
    };
    for (const auto& p : src_.pci_devices()) {
      consider(p.address(), p.modalias(), p.driver());
      for (const auto& c : p.children()) {
        consider(StrCat(p.address(), " ", c.name()), c.modalias(), c.driver());
      }
    }
    const std::string& hv = tgt_.platform().hypervisor();
    for (const auto& h : src_.hypervisor_software()) {
      if (h.kind() == v1::HYPERVISOR_SOFTWARE_KIND_GUEST_TOOLS) {
        if (h.platform() == hv) continue;
        v1::RemovalItem* r = plan_->add_removals();
        r->set_what(StrCat("package ", h.package()));
        r->set_reason(StrCat(
            "guest tools for ", h.platform(), "; the target is ",
            hv.empty() ? (tgt_.platform().virtual_machine()
                              ? std::string("an unknown hypervisor's guest")
                              : std::string("not a virtual machine"))
                       : StrCat("a ", hv, " guest")));
        std::string units;
        for (const auto& u : h.enabled_units()) units += StrCat(" ", u);
        r->set_action(units.empty() ? "disable or remove"
                                    : StrCat("disable units:", units));
      } else if (h.kind() == v1::HYPERVISOR_SOFTWARE_KIND_MANAGER) {
        bool has_virt = false;
        for (const auto& f : tgt_.cpu().flags())
          has_virt |= f == "vmx" || f == "svm";
        if (!has_virt) {
          plan_->add_notes(StrCat("hypervisor manager ", h.package(),
                                  " is installed, but the target CPU has no "
                                  "vmx/svm flag: its guests will not run "
                                  "with hardware acceleration"));
        }
      }
    }
  }

  // ------------------------------------------------------------------- NICs
  Status PlanNics() {
    std::vector<const v1::NetworkInterface*> s, t;
    for (const auto& n : src_.nics()) s.push_back(&n);
    for (const auto& n : tgt_.nics()) t.push_back(&n);
    auto by_pci = [](const auto* a, const auto* b) {
      return a->pci_address() < b->pci_address();
    };
    std::stable_sort(s.begin(), s.end(), by_pci);
    std::stable_sort(t.begin(), t.end(), by_pci);
    std::set<const v1::NetworkInterface*> used_s, used_t;
    auto find = [](const std::vector<const v1::NetworkInterface*>& v,
                   const std::string& key) -> const v1::NetworkInterface* {
      std::string k = Lower(key);
      for (const auto* n : v) {
        if (n->name() == key || n->mac() == k) return n;
      }
      return nullptr;
    };
    for (const auto& [from, to] : opt_.nic_map) {
      const auto* a = find(s, from);
      const auto* b = find(t, to);
      if (a == nullptr) {
        return absl::InvalidArgumentError(
            StrCat("NIC map ", from, "=", to, ": the source has no NIC named ",
                   from, " or with that MAC"));
      }
      if (b == nullptr) {
        return absl::InvalidArgumentError(
            StrCat("NIC map ", from, "=", to, ": the target has no NIC named ",
                   to, " or with that MAC"));
      }
      if (used_s.count(a) || used_t.count(b)) {
        return absl::InvalidArgumentError(
            StrCat("NIC map ", from, "=", to, ": a NIC is mapped twice"));
      }
      used_s.insert(a);
      used_t.insert(b);
      AddNicMapping(*a, *b, "explicit");
    }
    size_t j = 0;
    for (const auto* a : s) {
      if (used_s.count(a)) continue;
      while (j < t.size() && used_t.count(t[j])) ++j;
      if (j >= t.size()) {
        plan_->add_unmapped_source_nics(StrCat(a->name(), " ", a->mac()));
        for (const auto& c : ConfigsFor(*a)) {
          plan_->add_notes(StrCat(c->system(), " ", c->file(),
                                  ": configuration for ", a->name(),
                                  " will match no NIC on the target"));
        }
        continue;
      }
      used_t.insert(t[j]);
      AddNicMapping(*a, *t[j], "pci-order");
    }
    for (const auto* b : t) {
      if (!used_t.count(b)) {
        plan_->add_unmapped_target_nics(
            StrCat(b->name(), " ", b->mac(), " (new; no configuration)"));
      }
    }
    return absl::OkStatus();
  }

  std::vector<const v1::InterfaceConfig*> ConfigsFor(
      const v1::NetworkInterface& n) {
    std::vector<const v1::InterfaceConfig*> out;
    for (const auto& c : src_.network().interfaces()) {
      if ((!c.name().empty() && c.name() == n.name()) ||
          (!c.match_mac().empty() && c.match_mac() == n.mac())) {
        out.push_back(&c);
      }
    }
    return out;
  }

  void AddNicMapping(const v1::NetworkInterface& a,
                     const v1::NetworkInterface& b, const char* how) {
    v1::NicMapping* m = plan_->add_nic_mappings();
    m->set_source_name(a.name());
    m->set_source_mac(a.mac());
    m->set_source_driver(a.driver());
    m->set_source_pci_address(a.pci_address());
    m->set_target_name(b.name());
    m->set_target_mac(b.mac());
    m->set_target_driver(b.driver());
    m->set_target_pci_address(b.pci_address());
    m->set_matched_by(how);
    auto configs = ConfigsFor(a);
    if (configs.empty()) {
      m->add_config_effects(
          StrCat("no network configuration names ", a.name(), " or ", a.mac()));
    }
    for (const v1::InterfaceConfig* c : configs) {
      std::string addrs;
      for (const auto& x : c->addresses())
        addrs += StrCat(addrs.empty() ? "" : ", ", x);
      std::string what =
          c->method() == "static"
              ? StrCat("static ", addrs,
                       c->gateway().empty() ? ""
                                            : StrCat(" gateway ", c->gateway()))
              : c->method();
      std::string where = StrCat(c->system(), " ", c->file());
      if (!c->match_mac().empty() && c->match_mac() == a.mac()) {
        if (a.mac() == b.mac()) {
          m->add_config_effects(StrCat(
              where, ": selects the NIC by MAC ", a.mac(),
              ", which the target NIC keeps; ", what, " applies unchanged"));
        } else {
          m->add_config_effects(StrCat(
              where, ": selects the NIC by MAC ", a.mac(),
              "; the target NIC has MAC ", b.mac(), ": rewrite the match to ",
              b.mac(), " so that ", what, " moves to ", b.name()));
        }
        continue;
      }
      if (c->name() == b.name()) {
        m->add_config_effects(StrCat(
            where, ": ", c->name(), " keeps its name on the target (driver ",
            a.driver(), " -> ", b.driver(), ", MAC ", a.mac(), " -> ", b.mac(),
            "); ", what, " applies unchanged"));
      } else {
        m->add_config_effects(StrCat(
            where, ": ", c->name(), " will be called ", b.name(),
            " on the target: rewrite the configuration to ", b.name(),
            " (or pin the old name with a systemd .link file matching MAC ",
            b.mac(), "); ", what, " moves with it"));
      }
    }
  }

  // ------------------------------------------------------------------ disks
  static std::vector<const v1::Disk*> FixedDisks(const v1::HardwareProfile& p) {
    std::vector<const v1::Disk*> out;
    for (const auto& d : p.disks()) {
      if (!d.removable() && d.size_bytes() > 0) out.push_back(&d);
    }
    std::stable_sort(out.begin(), out.end(), [](const auto* a, const auto* b) {
      if (a->controller_pci_address() != b->controller_pci_address()) {
        return a->controller_pci_address() < b->controller_pci_address();
      }
      return a->name() < b->name();
    });
    return out;
  }

  void PlanDisks() {
    auto s = FixedDisks(src_);
    auto t = FixedDisks(tgt_);
    for (size_t i = 0; i < s.size(); ++i) {
      if (i >= t.size()) {
        plan_->add_blockers(StrCat("source disk ", s[i]->name(),
                                   " has no counterpart on the target (the "
                                   "target has ",
                                   t.size(), " disk(s))"));
        continue;
      }
      const v1::Disk& a = *s[i];
      const v1::Disk& b = *t[i];
      v1::DiskChange* c = plan_->add_disk_changes();
      c->set_source_disk(a.name());
      c->set_target_disk(b.name());
      c->set_source_size_bytes(a.size_bytes());
      c->set_target_size_bytes(b.size_bytes());
      uint64_t end = 0;
      for (const auto& p : a.partitions()) {
        end = std::max(end, p.start_bytes() + p.size_bytes());
      }
      if (b.size_bytes() == a.size_bytes()) {
        c->set_size_change("same");
      } else if (b.size_bytes() > a.size_bytes()) {
        c->set_size_change("grow");
        c->add_notes(StrCat("grows by ", b.size_bytes() - a.size_bytes(),
                            " bytes: the last partition and its file system "
                            "can be extended"));
      } else if (end > 0 &&
                 b.size_bytes() >=
                     end + (a.partition_table_type() == "gpt" ? 33 * 512 : 0)) {
        c->set_size_change("shrink-fits");
        c->add_notes(StrCat("shrinks by ", a.size_bytes() - b.size_bytes(),
                            " bytes; the partitions end at ", end,
                            " and fit unchanged"));
      } else {
        c->set_size_change("shrink-blocked");
        plan_->add_blockers(StrCat(
            "target disk ", b.name(), " (", b.size_bytes(),
            " bytes) is smaller than the partitions of source disk ", a.name(),
            " (they end at byte ", end,
            "); shrinking needs the file systems shrunk first, and the profile "
            "does not show that the data fits"));
      }
      if (a.partition_table_type() == "gpt" && c->size_change() != "same") {
        c->add_notes(
            "GPT: the backup header must be moved to the new end of "
            "the disk");
      }
      c->set_source_logical_sector_size(a.logical_sector_size());
      c->set_target_logical_sector_size(b.logical_sector_size());
      if (a.logical_sector_size() != b.logical_sector_size() &&
          a.logical_sector_size() != 0 && b.logical_sector_size() != 0) {
        c->set_sector_size_changes(true);
        plan_->add_blockers(StrCat(
            "disk ", a.name(), " -> ", b.name(),
            ": logical sector size changes ", a.logical_sector_size(), " -> ",
            b.logical_sector_size(),
            "; the partition table addresses sectors and must be rewritten "
            "(a block-for-block copy would not be readable)"));
      }
      c->set_source_bus(std::string(DiskBusName(a.bus())));
      c->set_target_bus(std::string(DiskBusName(b.bus())));
      c->set_controller_changes(a.bus() != b.bus() ||
                                a.controller_driver() != b.controller_driver());
      if (c->controller_changes()) {
        c->add_notes(StrCat(
            "controller ", DiskBusName(a.bus()), " (", a.controller_driver(),
            ") -> ", DiskBusName(b.bus()), " (", b.controller_driver(),
            "): its driver must be in the initramfs (see modules)"));
      }
      if (a.name() != b.name()) {
        c->add_device_name_changes(
            StrCat("/dev/", a.name(), " -> /dev/", b.name()));
        for (const auto& p : a.partitions()) {
          c->add_device_name_changes(
              StrCat("/dev/", p.name(), " -> /dev/",
                     PartitionName(b.name(), p.number())));
        }
      }
      AffectedReferences(a, b, c);
    }
    for (size_t i = s.size(); i < t.size(); ++i) {
      plan_->add_notes(StrCat("target disk ", t[i]->name(),
                              " has no source counterpart and stays unused"));
    }
  }

  // References to `a` by name (which change) and by stable ids (which do
  // not) in fstab, crypttab and the boot loader.
  void AffectedReferences(const v1::Disk& a, const v1::Disk& b,
                          v1::DiskChange* c) {
    bool names_change = a.name() != b.name();
    bool path_changes = a.udev_path() != b.udev_path();
    std::string dev = StrCat("/dev/", a.name());
    auto names_disk = [&](std::string_view spec) {
      if (!StartsWith(spec, dev)) return false;
      std::string_view rest = spec.substr(dev.size());
      if (rest.empty()) return true;
      if (rest.front() == 'p') rest.remove_prefix(1);
      return !rest.empty() &&
             std::all_of(rest.begin(), rest.end(), [](char ch) {
               return std::isdigit(static_cast<unsigned char>(ch));
             });
    };
    std::set<std::string> uuids;
    for (const auto& p : a.partitions()) {
      if (!p.fs_uuid().empty()) uuids.insert(p.fs_uuid());
    }
    auto check = [&](std::string_view where, std::string_view spec,
                     v1::DeviceRefKind kind) {
      if (kind == v1::DEVICE_REF_KIND_DEVICE_NAME && names_disk(spec)) {
        if (names_change) {
          c->add_affected_references(StrCat(where, ": ", spec,
                                            " (device name changes: rewrite to "
                                            "UUID= or the new name)"));
        }
      } else if ((kind == v1::DEVICE_REF_KIND_BY_PATH ||
                  kind == v1::DEVICE_REF_KIND_BY_ID) &&
                 (path_changes || names_change)) {
        c->add_affected_references(
            StrCat(where, ": ", spec,
                   " (by-path/by-id names the "
                   "controller or model: rewrite to UUID=)"));
      } else if (kind == v1::DEVICE_REF_KIND_UUID) {
        std::string_view u = spec.substr(
            spec.find('=') == std::string_view::npos ? spec.rfind('/') + 1
                                                     : spec.find('=') + 1);
        if (uuids.count(std::string(u))) {
          c->add_notes(StrCat(where, ": ", spec, " is by UUID: unaffected"));
        }
      }
    };
    for (const auto& e : src_.fstab()) {
      check(StrCat("/etc/fstab line ", e.line()), e.spec(), e.ref_kind());
    }
    for (const auto& e : src_.crypttab()) {
      check(StrCat("/etc/crypttab line ", e.line()), e.device(), e.ref_kind());
    }
    for (const auto& r : src_.boot_loader().device_references()) {
      size_t colon = r.find(": ");
      std::string_view ref = colon == std::string::npos
                                 ? std::string_view(r)
                                 : std::string_view(r).substr(colon + 2);
      std::string_view where = colon == std::string::npos
                                   ? std::string_view("boot loader")
                                   : std::string_view(r).substr(0, colon);
      std::string_view value = ref;
      if (size_t eq = ref.find('=');
          eq != std::string_view::npos && StartsWith(ref, "root=")) {
        value = ref.substr(eq + 1);
      }
      if (StartsWith(value, "/dev/")) {
        check(where, value,
              static_cast<v1::DeviceRefKind>(
                  StartsWith(value, "/dev/disk/by-path/")
                      ? v1::DEVICE_REF_KIND_BY_PATH
                  : StartsWith(value, "/dev/disk/by-id/")
                      ? v1::DEVICE_REF_KIND_BY_ID
                      : v1::DEVICE_REF_KIND_DEVICE_NAME));
      }
    }
    if (names_change && c->affected_references().empty()) {
      c->add_notes(
          "no fstab, crypttab or boot loader reference uses the old "
          "device names");
    }
  }

  // -------------------------------------------------------------- boot mode
  void PlanBootMode() {
    v1::BootModeChange* b = plan_->mutable_boot_mode();
    v1::FirmwareMode from = src_.firmware().mode();
    v1::FirmwareMode to = tgt_.firmware().mode();
    b->set_source_mode(from);
    b->set_target_mode(to);
    b->set_target_secure_boot(tgt_.firmware().secure_boot());
    b->set_changes(from != to && from != v1::FIRMWARE_MODE_UNSPECIFIED &&
                   to != v1::FIRMWARE_MODE_UNSPECIFIED);
    auto req = [&](bool met, std::string text) {
      b->add_requirements(StrCat(met ? "[met] " : "[todo] ", text));
    };
    const v1::Disk* boot = nullptr;
    auto disks = FixedDisks(src_);
    if (!disks.empty()) boot = disks.front();
    bool esp = false, bios_boot = false;
    if (boot != nullptr) {
      for (const auto& p : boot->partitions()) {
        std::string t = Lower(p.part_type());
        esp |= t == kEspGuid || t == "0xef";
        bios_boot |= t == kBiosBootGuid;
      }
    }
    bool gpt = boot != nullptr && boot->partition_table_type() == "gpt";
    const std::string& loader = src_.boot_loader().name();
    bool efi_mount = false;
    for (const auto& e : src_.fstab())
      efi_mount |= e.mount_point() == "/boot/efi";
    if (b->changes() && to == v1::FIRMWARE_MODE_UEFI) {
      req(esp,
          "an EFI System Partition (FAT32, at least 100 MiB) on the boot disk");
      req(gpt,
          StrCat(
              "a GPT partition table (the source has ",
              boot ? boot->partition_table_type() : "no disk",
              "; UEFI can boot MBR with a type-0xef ESP, but GPT is usual)"));
      req(loader == "grub-efi",
          "GRUB for UEFI: install grub-efi-amd64 in place of grub-pc, then "
          "grub-install --target=x86_64-efi (and --removable, since the "
          "target's NVRAM has no entry)");
      req(efi_mount, "an fstab entry mounting the ESP at /boot/efi");
    } else if (b->changes() && to == v1::FIRMWARE_MODE_BIOS) {
      req(loader == "grub-pc",
          "GRUB for BIOS: install grub-pc in place of grub-efi-amd64, then "
          "grub-install --target=i386-pc on the boot disk");
      if (gpt) {
        req(bios_boot,
            "a BIOS boot partition (1 MiB, type "
            "21686148-6449-6e6f-744e-656564454649) for GRUB's core "
            "image on a GPT disk");
      }
      if (efi_mount) {
        b->add_requirements(
            "[todo] the /boot/efi fstab entry is unused under "
            "BIOS: remove it or mark it nofail");
      }
    }
    if (to == v1::FIRMWARE_MODE_UEFI &&
        tgt_.firmware().secure_boot() == v1::SECURE_BOOT_ENABLED) {
      req(false,
          "Secure Boot is enabled on the target: boot through shim-signed and "
          "grub-efi-amd64-signed with a signed kernel, or disable Secure Boot");
    }
    if (b->changes()) {
      for (const auto& r : b->requirements()) {
        if (StartsWith(r, "[todo]")) {
          plan_->add_notes(StrCat("boot mode ", FirmwareModeName(from), " -> ",
                                  FirmwareModeName(to), ": ", r.substr(7)));
        }
      }
    }
  }

  const v1::HardwareProfile& src_;
  const v1::HardwareProfile& tgt_;
  const ProfileDiffOptions& opt_;
  v1::ProfileDiffPlan* plan_;
  const v1::InstalledKernel* kernel_ = nullptr;
  std::unique_ptr<ModuleIndex> index_;
};

std::string_view PlacementName(v1::ModulePlacement p) {
  switch (p) {
    case v1::MODULE_PLACEMENT_BUILTIN:
      return "builtin";
    case v1::MODULE_PLACEMENT_IN_INITRAMFS:
      return "in_initramfs";
    case v1::MODULE_PLACEMENT_ADD_TO_INITRAMFS:
      return "add_to_initramfs";
    case v1::MODULE_PLACEMENT_IN_MODULE_TREE:
      return "in_module_tree";
    case v1::MODULE_PLACEMENT_ABSENT:
      return "absent";
    default:
      return "unspecified";
  }
}

}  // namespace

StatusOr<v1::ProfileDiffPlan> ProfileDiff(const v1::HardwareProfile& source,
                                          const v1::HardwareProfile& target,
                                          const ProfileDiffOptions& options) {
  v1::ProfileDiffPlan plan;
  Planner p(source, target, options, &plan);
  CAIRN_RETURN_IF_ERROR(p.Run());
  return plan;
}

std::string RenderProfileDiffText(const v1::ProfileDiffPlan& plan) {
  std::string o;
  auto line = [&](auto&&... parts) {
    o += StrCat(parts...);
    o += "\n";
  };
  line("Restore plan: source kernel ", plan.source_kernel(),
       " (modules matched with ", plan.module_index_backend(), ")");
  line("");
  line("Modules the target's devices need:");
  if (plan.modules().empty()) line("  none");
  for (const auto& m : plan.modules()) {
    std::string deps;
    for (const auto& d : m.depends_on())
      deps += StrCat(deps.empty() ? "" : ", ", d);
    line("  ", m.module(), "  ", PlacementName(m.placement()),
         m.boot_critical() ? "  [boot-critical]" : "",
         deps.empty() ? "" : StrCat("  depends on: ", deps));
    for (const auto& n : m.needed_by()) line("      for ", n);
  }
  if (!plan.conflicts().empty()) {
    line("");
    line("Conflicts (the source kernel cannot drive these devices):");
    for (const auto& c : plan.conflicts()) {
      line("  ", c.device(), ": ", c.reason());
      std::string opts;
      for (const auto& x : c.options())
        opts += StrCat(opts.empty() ? "" : " | ", x);
      line("      options: ", opts, "; chosen: ",
           c.chosen().empty() ? "none yet (explicit choice required)"
                              : c.chosen());
    }
  }
  line("");
  line("Hardware that is gone:");
  if (plan.removals().empty()) line("  nothing");
  for (const auto& r : plan.removals()) {
    line("  ", r.what(), ": ", r.reason(), "; action: ", r.action());
  }
  line("");
  line("NIC mapping:");
  if (plan.nic_mappings().empty()) line("  none");
  for (const auto& m : plan.nic_mappings()) {
    line("  ", m.source_name(), " ", m.source_mac(), " (", m.source_driver(),
         " ", m.source_pci_address(), ") -> ", m.target_name(), " ",
         m.target_mac(), " (", m.target_driver(), " ", m.target_pci_address(),
         ")  by ", m.matched_by());
    for (const auto& e : m.config_effects()) line("      ", e);
  }
  for (const auto& n : plan.unmapped_source_nics())
    line("  unmapped source NIC: ", n);
  for (const auto& n : plan.unmapped_target_nics())
    line("  unmapped target NIC: ", n);
  line("");
  line("Disks:");
  if (plan.disk_changes().empty()) line("  none");
  for (const auto& d : plan.disk_changes()) {
    line("  ", d.source_disk(), " (", d.source_size_bytes(), " bytes, ",
         d.source_bus(), ", ", d.source_logical_sector_size(),
         "-byte sectors) -> ", d.target_disk(), " (", d.target_size_bytes(),
         " bytes, ", d.target_bus(), ", ", d.target_logical_sector_size(),
         "-byte sectors): ", d.size_change());
    for (const auto& n : d.device_name_changes()) line("      rename ", n);
    for (const auto& r : d.affected_references()) line("      affected: ", r);
    for (const auto& n : d.notes()) line("      ", n);
  }
  line("");
  const auto& b = plan.boot_mode();
  line("Boot mode: ", FirmwareModeName(b.source_mode()), " -> ",
       FirmwareModeName(b.target_mode()),
       b.changes() ? " (changes)" : " (unchanged)");
  for (const auto& r : b.requirements()) line("  ", r);
  if (!plan.notes().empty()) {
    line("");
    line("Notes:");
    for (const auto& n : plan.notes()) line("  ", n);
  }
  line("");
  if (plan.blockers().empty()) {
    line("Ready: no blockers.");
  } else {
    line("Blockers (", plan.blockers_size(), "):");
    for (const auto& x : plan.blockers()) line("  ", x);
  }
  return o;
}

StatusOr<std::string> ProfileDiffToJson(const v1::ProfileDiffPlan& plan) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string out;
  auto s = google::protobuf::util::MessageToJsonString(plan, &out, opts);
  if (!s.ok())
    return absl::InternalError(StrCat("plan to JSON: ", s.ToString()));
  try {
    nlohmann::json j = nlohmann::json::parse(out);
    for (auto& m : j["modules"]) {
      int v = 0;
      for (const auto& e : plan.modules()) {
        if (e.module() == m["module"].get<std::string>()) v = e.placement();
      }
      m["placement"] = PlacementName(static_cast<v1::ModulePlacement>(v));
    }
    j["boot_mode"]["source_mode"] =
        FirmwareModeName(plan.boot_mode().source_mode());
    j["boot_mode"]["target_mode"] =
        FirmwareModeName(plan.boot_mode().target_mode());
    j["boot_mode"]["target_secure_boot"] =
        SecureBootName(plan.boot_mode().target_secure_boot());
    nlohmann::json top = {{"format", "cairn.profile_diff_plan"},
                          {"ready", plan.blockers().empty()}};
    top.update(j);
    return top.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(StrCat("plan JSON: ", e.what()));
  }
}

}  // namespace cairn
