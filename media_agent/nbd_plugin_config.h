// NbdPluginConfig: the parameters of the Cairn nbdkit plugin
// (media_agent/nbd_plugin.cc) and how they become an ExportedImage. Kept
// apart from the plugin's C callbacks so it can be unit-tested.
//
//   store=DIR        repository directory (required)
//   backup=ID        backup id (required)
//   key-fd=N         inherited descriptor carrying the data key in key-file
//                    text form; read to end of file, then closed
//   key-file=PATH    data key file: regular, owned by this user or root,
//                    mode 0600 or stricter; symlinks refused
//   lock=exclusive   take the repository lock (the default: safe against a
//                    concurrent GC in another process, but fails if a media
//                    agent owns the store) | lock=none (read-only, no lock;
//                    for exports started by the process holding the lock)
//   cache=SIZE       bound of the decoded-chunk cache (bytes; K/M/G suffixes
//                    are binary), default 256M
//   parallel=false   requests of one connection are served one at a time
//                    (the default; connections still run in parallel, and
//                    the export allows multi-conn) | parallel=true: several
//                    requests of one connection at once. nbdkit 1.32 (Debian
//                    12) aborts (connections.c raw_send_socket assertion)
//                    when a client disconnects while replies of one
//                    connection are in flight - which a client does after a
//                    read error - so parallel=true is only for a fixed nbdkit.
// A data key is never accepted as a parameter value: nbdkit's argv is
// readable by every user through /proc/PID/cmdline.
//
// Thread safety: plain functions over a value type.
#ifndef CAIRN_MEDIA_AGENT_NBD_PLUGIN_CONFIG_H_
#define CAIRN_MEDIA_AGENT_NBD_PLUGIN_CONFIG_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"
#include "media_agent/exported_image.h"

namespace cairn {

struct NbdPluginConfig {
  std::string store;
  std::string backup_id;
  int key_fd = -1;       // -1: none
  std::string key_file;  // empty: none
  bool lock_store = true;
  uint64_t cache_bytes = kDefaultExportCacheBytes;
  bool parallel_requests = false;
  std::set<std::string> seen;  // parameter names applied so far
};

// One-line descriptions of the parameters, for nbdkit's --help.
extern const char kNbdPluginConfigHelp[];

// Applies one key=value parameter. InvalidArgument for an unknown or repeated
// parameter or a malformed value; a parameter that looks like it carries the
// key itself (key=, secret=, ...) is refused with a message saying why.
Status ApplyNbdPluginParam(NbdPluginConfig* config, std::string_view key,
                           std::string_view value);

// Checks a complete configuration: store and backup given, a valid backup id,
// at most one of key-fd and key-file. InvalidArgument otherwise.
Status ValidateNbdPluginConfig(const NbdPluginConfig& config);

// Opens what `config` names: the repository (locked or through a
// ReadOnlyStore), the data key (reading and closing key-fd; the secret is
// wiped once the DataKey is made) and the backup. Errors are those of
// Repository::Open, key handover (media_agent/key_handover.h) and
// ExportedImage::Open; they name the store, the backup or the key source.
// REQUIRES: ValidateNbdPluginConfig(config).ok().
StatusOr<std::unique_ptr<ExportedImage>> OpenExportedImage(
    const NbdPluginConfig& config, Env* env = Env::Default());

// "256M" / "1G" / "4096" to bytes. InvalidArgument if malformed or zero.
StatusOr<uint64_t> ParseByteSize(std::string_view text);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_NBD_PLUGIN_CONFIG_H_
