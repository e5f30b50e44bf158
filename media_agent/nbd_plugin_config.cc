#include "media_agent/nbd_plugin_config.h"

#include <charconv>

#include "common/data_key.h"
#include "common/manifest.h"
#include "common/strings.h"
#include "media_agent/key_handover.h"
#include "media_agent/read_only_store.h"
#include "media_agent/repository.h"

namespace cairn {

const char kNbdPluginConfigHelp[] =
    "store=<DIR>      (required) Cairn repository directory.\n"
    "backup=<ID>      (required) Backup to export (read-only).\n"
    "key-fd=<N>       Inherited descriptor carrying the data key (64 hex).\n"
    "key-file=<PATH>  Data key file (owned by this user, mode 0600).\n"
    "lock=exclusive|none  Take the repository lock (default exclusive).\n"
    "cache=<SIZE>     Decoded-chunk cache bound (default 256M).\n"
    "parallel=true|false  Parallel requests within a connection (default\n"
    "                 false: nbdkit 1.32 aborts on client disconnect).";

StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value);
  std::string_view suffix(end, text.data() + text.size() - end);
  int shift = -1;
  if (suffix.empty() || suffix == "B") shift = 0;
  if (suffix == "K" || suffix == "KiB") shift = 10;
  if (suffix == "M" || suffix == "MiB") shift = 20;
  if (suffix == "G" || suffix == "GiB") shift = 30;
  if (ec != std::errc() || end == text.data() || shift < 0 || value == 0 ||
      value > (UINT64_MAX >> shift)) {
    return absl::InvalidArgumentError(StrCat(
        "'", text, "' is not a size (a positive number, optional K/M/G)"));
  }
  return value << shift;
}

Status ApplyNbdPluginParam(NbdPluginConfig* c, std::string_view key,
                           std::string_view value) {
  std::string name(key);
  if (name == "key" || name == "secret" || name == "data-key" ||
      name == "key-hex" || name == "password") {
    return absl::InvalidArgumentError(
        StrCat("'", name,
               "=' is refused: a data key is never taken from the command "
               "line (every user can read it in /proc/PID/cmdline); pass "
               "key-fd=N (an inherited descriptor) or key-file=PATH"));
  }
  if (c->seen.contains(name)) {
    return absl::InvalidArgumentError(
        StrCat("parameter '", name, "' given twice"));
  }
  if (name == "store") {
    if (value.empty()) return absl::InvalidArgumentError("store= is empty");
    c->store = std::string(value);
  } else if (name == "backup") {
    c->backup_id = std::string(value);
  } else if (name == "key-fd") {
    int fd = -1;
    auto [end, ec] =
        std::from_chars(value.data(), value.data() + value.size(), fd);
    if (ec != std::errc() || end != value.data() + value.size() || fd < 0) {
      return absl::InvalidArgumentError(
          StrCat("key-fd='", value, "' is not a descriptor number"));
    }
    if (fd <= 2) {
      return absl::InvalidArgumentError(
          StrCat("key-fd=", fd,
                 " is stdin, stdout or stderr; pass the key on another "
                 "inherited descriptor"));
    }
    c->key_fd = fd;
  } else if (name == "key-file") {
    if (value.empty()) return absl::InvalidArgumentError("key-file= is empty");
    c->key_file = std::string(value);
  } else if (name == "lock") {
    if (value == "exclusive") {
      c->lock_store = true;
    } else if (value == "none") {
      c->lock_store = false;
    } else {
      return absl::InvalidArgumentError(
          StrCat("lock='", value, "': expected exclusive or none"));
    }
  } else if (name == "parallel") {
    if (value == "true" || value == "on" || value == "1") {
      c->parallel_requests = true;
    } else if (value == "false" || value == "off" || value == "0") {
      c->parallel_requests = false;
    } else {
      return absl::InvalidArgumentError(
          StrCat("parallel='", value, "': expected true or false"));
    }
  } else if (name == "cache") {
    CAIRN_ASSIGN_OR_RETURN(c->cache_bytes, ParseByteSize(value));
  } else {
    return absl::InvalidArgumentError(StrCat(
        "unknown parameter '", name,
        "' (expected store, backup, key-fd, key-file, lock, cache, parallel)"));
  }
  c->seen.insert(name);
  return absl::OkStatus();
}

Status ValidateNbdPluginConfig(const NbdPluginConfig& c) {
  if (c.store.empty()) {
    return absl::InvalidArgumentError("store=DIR is required");
  }
  if (c.backup_id.empty()) {
    return absl::InvalidArgumentError("backup=ID is required");
  }
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(c.backup_id));
  if (c.key_fd >= 0 && !c.key_file.empty()) {
    return absl::InvalidArgumentError("key-fd and key-file exclude each other");
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<ExportedImage>> OpenExportedImage(
    const NbdPluginConfig& c, Env* env) {
  // The key first: an inherited descriptor is closed whatever happens next.
  std::unique_ptr<DataKey> key;
  if (c.key_fd >= 0 || !c.key_file.empty()) {
    auto secret = c.key_fd >= 0 ? ReadKeySecretFromFd(c.key_fd)
                                : ReadKeySecretFromFile(c.key_file);
    if (!secret.ok()) return secret.status();
    auto k = DataKey::FromSecret(*secret);
    WipeSecret(&*secret);
    if (!k.ok()) return k.status();
    key = std::make_unique<DataKey>(*std::move(k));
  }
  std::unique_ptr<ChunkSource> source;
  if (c.lock_store) {
    RepositoryOptions o;
    o.env = env;
    CAIRN_ASSIGN_OR_RETURN(source, Repository::Open(c.store, o));
  } else {
    CAIRN_ASSIGN_OR_RETURN(source, ReadOnlyStore::Open(c.store, env));
  }
  auto image = ExportedImage::Open(std::move(source), std::move(key),
                                   c.backup_id, c.cache_bytes);
  if (!image.ok()) {
    return Status(image.status().code(),
                  StrCat("cannot export backup '", c.backup_id, "' of ",
                         c.store, ": ", ToStd(image.status().message())));
  }
  return image;
}

}  // namespace cairn
