// ModuleIndex: which kernel modules of one kernel drive a device, the way
// modprobe decides it - by matching the device's modalias against the
// kernel's alias patterns (modules.alias, and for built-in drivers the
// "alias=" entries of modules.builtin.modinfo) with fnmatch(3), and
// reading dependencies from modules.dep.
//
// Two backends give the same answers:
//   - ModuleIndexFromFiles: the text indices recorded in a HardwareProfile
//     (v1::ModuleIndexFiles), parsed by Cairn; needs no machine.
//   - ModuleIndexFromKmod: libkmod against a module directory with depmod's
//     binary indices (modules.alias.bin, modules.dep.bin,
//     modules.builtin.bin, modules.builtin.alias.bin), without reading the
//     host's modprobe configuration or /sys. libkmod stats each module
//     file when it resolves dependencies, so the .ko files must exist
//     (Dependencies is FailedPrecondition otherwise).
//
// A modalias is data, never a pattern: Lookup refuses one containing glob
// characters (* ? [ ] \) or control characters with InvalidArgument, so a
// hostile profile cannot make one device "match" every driver.
//
// Module names are normalised as modprobe does: no directory, no
// .ko/.ko.xz/.ko.zst/.ko.gz suffix, '-' replaced by '_'.
//
// Thread safety: the file-backed index is immutable after construction and
// safe to share. The kmod-backed one holds a kmod context and must be used
// from one thread at a time.
#ifndef CAIRN_COMMON_MODULE_INDEX_H_
#define CAIRN_COMMON_MODULE_INDEX_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/v1/profile.pb.h"
#include "common/status.h"

namespace cairn {

struct KernelModule {
  std::string name;  // normalised
  bool builtin = false;
  std::string path;  // relative to the module directory; "" when built in
};

class ModuleIndex {
 public:
  virtual ~ModuleIndex() = default;

  // Modules whose alias patterns match `modalias`, sorted by name, without
  // duplicates. Empty when nothing matches. InvalidArgument for a modalias
  // that is empty, longer than 1024 bytes, or contains glob or control
  // characters.
  virtual StatusOr<std::vector<KernelModule>> Lookup(
      std::string_view modalias) const = 0;

  // The module called `name` (normalised first); nullopt when this kernel
  // has no such module, loadable or built in.
  virtual StatusOr<std::optional<KernelModule>> Find(
      std::string_view name) const = 0;

  // Every module `name` needs loaded first, from modules.dep (which lists
  // indirect dependencies too), in load order. Empty for built-in modules.
  // NotFound when `name` is not a module of this kernel.
  virtual StatusOr<std::vector<std::string>> Dependencies(
      std::string_view name) const = 0;

  // "recorded-indices" or "libkmod:DIR".
  virtual std::string Backend() const = 0;
};

// Normalises a module name or path ("kernel/drivers/ata/ahci.ko" -> "ahci",
// "virtio-pci" -> "virtio_pci").
std::string NormalizeModuleName(std::string_view name_or_path);

// OK when `modalias` may be looked up (see Lookup); InvalidArgument naming
// the offending character otherwise.
Status ValidateModalias(std::string_view modalias);

// Index from recorded text files. InvalidArgument (naming the file and line)
// for malformed lines; FailedPrecondition when modules.alias or modules.dep
// is empty (no module tree was recorded).
StatusOr<std::unique_ptr<ModuleIndex>> ModuleIndexFromFiles(
    const v1::ModuleIndexFiles& files);

// Index over `module_dir` (e.g. /lib/modules/6.1.0-30-amd64) through
// libkmod. FailedPrecondition when the directory lacks depmod's binary
// indices.
StatusOr<std::unique_ptr<ModuleIndex>> ModuleIndexFromKmod(
    const std::string& module_dir);

}  // namespace cairn

#endif  // CAIRN_COMMON_MODULE_INDEX_H_
