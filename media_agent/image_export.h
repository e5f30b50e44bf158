// ImageExport: one backup (or customized image) of the store written as a
// disk image file a hypervisor can use - raw, qcow2, VMDK or VHDX (DESIGN.md
// section 5, "Delivery"; issue 6; docs/export.md).
//
// ExportImage() serves the image read-only over NBD with NbdExport
// (media_agent/nbd_export.h: nbdkit with Cairn's plugin, lock=none because
// the caller's Repository holds the store lock, the data key handed over
// through a pipe, the socket in a private directory) and runs
//   qemu-img convert -p -f raw -O FORMAT [-o OPTIONS] nbd+unix:///?socket=S TMP
// where TMP is a new file next to the destination
// (".<name>.cairn-export-XXXXXX"). Once qemu-img has succeeded TMP is
// fsync'ed and renamed to the destination, and the directory is fsync'ed.
//
// Crash safety: the destination name only ever holds a complete image. A
// failure, a cancellation or an error of qemu-img removes TMP; a crash of
// this process (SIGKILL, power loss) can leave TMP behind under its hidden
// name, never a partial file under the destination's name. Without
// `overwrite` an existing destination is refused before any work, and again
// atomically at the rename (RENAME_NOREPLACE), so a file created meanwhile is
// never replaced.
//
// The image file holds the decrypted disk: it is created with mode 0600.
//
// Thread safety: ExportImage() may run concurrently with other readers of
// the repository and with other exports (each has its own nbdkit, socket and
// temporary file); it only reads the store. It blocks until done and calls
// `progress` and `cancelled` from the calling thread. nbdkit runs with
// --exit-with-parent, so the calling thread must live until it returns
// (it does: the call is synchronous).
#ifndef CAIRN_MEDIA_AGENT_IMAGE_EXPORT_H_
#define CAIRN_MEDIA_AGENT_IMAGE_EXPORT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/data_key.h"
#include "common/status.h"
#include "media_agent/repository.h"

namespace cairn {

enum class ImageFormat {
  kRaw,    // sparse raw file
  kQcow2,  // qcow2, compat=1.1 (QEMU/KVM, libvirt, Proxmox, OpenStack)
  kVmdk,   // VMDK, subformat=streamOptimized (VMware import, VirtualBox)
  kVhdx,   // VHDX, subformat=dynamic (Hyper-V)
};

// "raw", "qcow2", "vmdk", "vhdx" (exactly these, lower case). InvalidArgument
// naming the accepted formats otherwise.
StatusOr<ImageFormat> ParseImageFormat(std::string_view name);
std::string_view ImageFormatName(ImageFormat format);
// The qemu-img `-o` creation options Cairn uses for `format` ("" for raw).
std::string_view QemuImgCreateOptions(ImageFormat format);

struct ImageExportOptions {
  std::string backup_id;  // a backup or customized image of the store
  // "raw", "qcow2", "vmdk" or "vhdx" (ParseImageFormat).
  std::string format;
  // The image file to write. Its directory must exist; the temporary file is
  // created there, so the final rename never crosses file systems.
  std::string destination;
  // Replace an existing destination (a regular file or a symlink, which is
  // replaced itself, not its target). Without it: AlreadyExists.
  bool overwrite = false;
  // The store's data key when the image is encrypted. Not owned.
  const DataKey* key = nullptr;
  // Parent of the private work directory (nbdkit's socket, pid file and log,
  // qemu-img's output); empty: $TMPDIR or /tmp. Holds no image data.
  std::string work_parent;
  std::string qemu_img_path;  // empty: "qemu-img" found on $PATH
  // Passed to NbdExport (empty: its defaults).
  std::string nbdkit_path;
  std::string plugin_path;
  // Bytes of the image converted so far and the image size, from qemu-img's
  // -p output, about 4 times a second; last call (size, size) on success.
  std::function<void(uint64_t done, uint64_t total)> progress;
  // Polled about 4 times a second; once it returns true qemu-img is stopped,
  // the temporary file removed, and ExportImage returns Cancelled.
  std::function<bool()> cancelled;
};

struct ImageExportResult {
  std::string destination;  // absolute path of the image written
  ImageFormat format = ImageFormat::kRaw;
  std::string backup_id;
  uint64_t virtual_size = 0;     // the image's size as the guest sees it
  uint64_t file_size = 0;        // st_size of the file written
  uint64_t allocated_bytes = 0;  // st_blocks * 512 (raw output is sparse)
  double export_seconds = 0;     // starting nbdkit
  double convert_seconds = 0;    // qemu-img convert, fsync and rename
  double seconds = 0;            // the whole call
  double bytes_per_second = 0;   // virtual_size / seconds
};

// Errors, checked in this order, before anything is started:
//   InvalidArgument  unknown format, malformed backup id, empty destination,
//                    a destination that is a directory;
//   NotFound         the destination's directory does not exist;
//   AlreadyExists    the destination exists and !overwrite;
//   NotFound         unknown backup;
//   FailedPrecondition  the image is encrypted and no key is given, or the
//                    key is not the image's;
//   DataLoss         damaged manifest (or signature);
// and afterwards: NbdExport::Start's errors (NotFound when nbdkit or the
// plugin is missing); NotFound when qemu-img is missing; for a failed
// qemu-img, the plugin's code when nbdkit logged one (DataLoss for a damaged
// chunk), ResourceExhausted when the disk is full, Internal otherwise, with
// the end of qemu-img's messages; AlreadyExists if the destination appeared
// during the export (!overwrite); Cancelled. On every error nothing is left
// under the destination's name that was not there before, the temporary
// file and the work directory are removed and nbdkit is stopped.
StatusOr<ImageExportResult> ExportImage(Repository& repo,
                                        const ImageExportOptions& options);

// --- Exposed for tests -------------------------------------------------------

// qemu-img's argument vector (argv[0] = `qemu_img`).
std::vector<std::string> BuildQemuImgConvertArgv(const std::string& qemu_img,
                                                 ImageFormat format,
                                                 const std::string& source_uri,
                                                 const std::string& target);

// The last complete percentage in qemu-img -p output ("    (42.50/100%)\r"),
// or nullopt if there is none yet.
std::optional<double> ParseQemuImgProgress(std::string_view output);

// ".<name>.cairn-export-" - the prefix of the temporary file (followed by six
// random characters) in the destination's directory.
std::string ExportTempPrefix(std::string_view destination_name);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_IMAGE_EXPORT_H_
