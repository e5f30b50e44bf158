// RootDir: read-only access to a machine's file system below a root
// directory, the way the hardware-profile collector needs it.
//
// Paths are given as the machine sees them ("/sys/class/net/enp0s2/address")
// and resolved below the root: "/" for the live system, or a recorded tree
// such as tests/data/profiles/bios-ahci-e1000. Every symlink is expanded by
// RootDir itself, one component at a time, never by the kernel:
//   - an absolute link target is taken relative to the root (as chroot
//     would), so "/etc/os-release -> /usr/lib/os-release" stays inside;
//   - a relative target that climbs above the root is an error
//     (InvalidArgument, "... escapes the root"), never silently clamped;
//   - more than kMaxSymlinks expansions is an error (InvalidArgument,
//     "symlink loop"), so loops end;
//   - files are opened with O_NOFOLLOW|O_NONBLOCK and must be regular files;
//     FIFOs, devices and sockets are refused (a FIFO would block);
//   - every read is bounded (ResourceExhausted past the limit).
// Every error names the machine path it is about.
//
// Resolve(..., kAllowMissing) expands a path whose tail does not exist
// textually, which is how sysfs links such as driver ->
// ../../../bus/pci/drivers/e1000 are read when only the link was recorded.
//
// The tree is assumed not to change while it is read (a concurrent writer
// could swap a component for a symlink between the check and the open).
//
// Thread safety: immutable after Open; safe to share between threads.
#ifndef CAIRN_AGENT_ROOT_DIR_H_
#define CAIRN_AGENT_ROOT_DIR_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cairn {

class RootDir {
 public:
  static constexpr int kMaxSymlinks = 40;
  static constexpr size_t kDefaultMaxRead = 1 << 20;  // 1 MiB
  static constexpr size_t kMaxDirEntries = 100000;

  enum class Missing { kError, kAllowMissing };
  enum class Kind { kMissing, kRegular, kDirectory, kOther };

  // `root` must be an existing directory. NotFound / InvalidArgument
  // otherwise.
  static StatusOr<RootDir> Open(std::string root);

  const std::string& root() const { return root_; }

  // The machine path `path` (absolute) with every symlink expanded, as a
  // machine path ("/sys/devices/pci0000:00/0000:00:02.0"). With kError a
  // missing component is NotFound; with kAllowMissing the remaining
  // components are applied textually.
  StatusOr<std::string> Resolve(std::string_view path,
                                Missing missing = Missing::kError) const;

  // What `path` is after resolution; kMissing when it does not exist.
  StatusOr<Kind> KindOf(std::string_view path) const;

  // Contents of the regular file at `path`. NotFound when absent;
  // ResourceExhausted when larger than `max_bytes`.
  StatusOr<std::string> ReadFile(std::string_view path,
                                 size_t max_bytes = kDefaultMaxRead) const;

  // Like ReadFile, but nullopt when `path` does not exist.
  StatusOr<std::optional<std::string>> ReadOptional(
      std::string_view path, size_t max_bytes = kDefaultMaxRead) const;

  // Sorted entry names of the directory at `path` (no "." or ".."). NotFound
  // when absent.
  StatusOr<std::vector<std::string>> List(std::string_view path) const;

  // The target text of the symlink at `path` (its parent directories are
  // resolved; the link itself is not followed). nullopt when `path` is not a
  // symlink or does not exist.
  StatusOr<std::optional<std::string>> ReadLink(std::string_view path) const;

  // Host path of an already resolved machine path.
  std::string HostPath(std::string_view resolved) const;

 private:
  explicit RootDir(std::string root) : root_(std::move(root)) {}
  std::string root_;  // no trailing slash; "" for "/"
};

// Last component of a machine path ("/a/b/c" -> "c").
std::string_view Basename(std::string_view path);
// Parent of a machine path ("/a/b/c" -> "/a/b", "/a" -> "/").
std::string_view Dirname(std::string_view path);

}  // namespace cairn

#endif  // CAIRN_AGENT_ROOT_DIR_H_
