// nbdkit-cairn-plugin.so: exports one Cairn backup read-only over NBD.
//
//   nbdkit --readonly -U SOCKET nbdkit-cairn-plugin.so
//       store=DIR backup=ID [key-fd=N | key-file=PATH] [lock=none] [cache=SIZE]
//
// Parameters: media_agent/nbd_plugin_config.h. Usually started by NbdExport
// (media_agent/nbd_export.h); documented in docs/nbd-export.md.
//
// The callbacks are thin: they convert between nbdkit's C interface and
// ExportedImage, catch every C++ exception (none may cross into nbdkit) and
// map Status codes to errno. Everything is opened in .config_complete, so a
// wrong key, an unknown backup or a damaged manifest stops nbdkit before it
// serves anything. Error messages start with the Status code in brackets
// ("[NOT_FOUND] ...") so the process that started nbdkit can recover it.
//
// Thread model: the plugin is safe under PARALLEL (ExportedImage is
// thread-safe), but .thread_model asks for SERIALIZE_REQUESTS unless
// parallel=true: nbdkit 1.32 (Debian 12) aborts with "raw_send_socket:
// Assertion `sock >= 0' failed" when a client drops a connection that has
// several replies in flight (nbdcopy does after a read error; reproduced with
// nbdkit's own file plugin and error filter). Connections still run in
// parallel, and the export is read-only, so multi-conn is advertised: every
// connection sees the same bytes.
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>
#include <sys/prctl.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/strings.h"
#include "media_agent/exported_image.h"
#include "media_agent/nbd_plugin_config.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

namespace {

using cairn::ExportedImage;
using cairn::NbdPluginConfig;
using cairn::Status;

// Process-wide state: nbdkit loads one plugin instance per process. Written
// only during configuration (single-threaded), read-only while serving.
NbdPluginConfig* g_config = nullptr;
ExportedImage* g_image = nullptr;

void ReportStatus(const Status& s) {
  std::string code = absl::StatusCodeToString(s.code());
  nbdkit_error("[%s] %s", code.c_str(), std::string(s.message()).c_str());
}

void ReportException(const char* where) {
  try {
    throw;
  } catch (const std::exception& e) {
    nbdkit_error("[INTERNAL] %s: %s", where, e.what());
  } catch (...) {
    nbdkit_error("[INTERNAL] %s: unknown exception", where);
  }
}

}  // namespace

// The callbacks nbdkit calls: C linkage, internal to this module.
extern "C" {

static void CairnLoad() {
  // No core dumps and no ptrace by other processes of this user: the process
  // holds a decrypting key.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  g_config = new (std::nothrow) NbdPluginConfig();
}

static void CairnUnload() {
  delete g_image;
  g_image = nullptr;
  delete g_config;
  g_config = nullptr;
}

static int CairnConfig(const char* key, const char* value) {
  try {
    if (g_config == nullptr) {
      nbdkit_error("[RESOURCE_EXHAUSTED] out of memory");
      return -1;
    }
    std::string k = key;
    std::string v = value;
    // Paths are made absolute now: nbdkit may change directory later.
    if (k == "store" || k == "key-file") {
      char* abs = nbdkit_absolute_path(value);
      if (abs == nullptr) return -1;  // nbdkit_error already called
      v = abs;
      free(abs);
    }
    Status s = cairn::ApplyNbdPluginParam(g_config, k, v);
    if (!s.ok()) {
      ReportStatus(s);
      return -1;
    }
    return 0;
  } catch (...) {
    ReportException("config");
    return -1;
  }
}

static int CairnConfigComplete() {
  try {
    if (g_config == nullptr) return -1;
    Status s = cairn::ValidateNbdPluginConfig(*g_config);
    if (!s.ok()) {
      ReportStatus(s);
      return -1;
    }
    auto image = cairn::OpenExportedImage(*g_config);
    if (!image.ok()) {
      ReportStatus(image.status());
      return -1;
    }
    g_image = image->release();
    const auto& m = g_image->manifest();
    nbdkit_debug(
        "cairn: exporting backup %s (%llu bytes, %zu chunks of %u, "
        "%s)",
        m.backup_id.c_str(), static_cast<unsigned long long>(m.image_size),
        m.chunks.size(), m.chunk_size,
        m.encrypted() ? "encrypted" : "not encrypted");
    return 0;
  } catch (...) {
    ReportException("config_complete");
    return -1;
  }
}

static int CairnThreadModel() {
  if (g_config != nullptr && g_config->parallel_requests) {
    return NBDKIT_THREAD_MODEL_PARALLEL;
  }
  return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
}

static void* CairnOpen(int /*readonly*/) {
  if (g_image == nullptr) {
    nbdkit_error("[FAILED_PRECONDITION] no backup is open");
    return nullptr;
  }
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t CairnGetSize(void* /*handle*/) {
  return static_cast<int64_t>(g_image->size());
}

static const char* CairnExportDescription(void* /*handle*/) {
  try {
    std::string d =
        cairn::StrCat("Cairn backup ", g_image->manifest().backup_id, " of ",
                      g_image->manifest().source);
    return nbdkit_strdup_intern(d.c_str());
  } catch (...) {
    return nullptr;
  }
}

static int CairnCanWrite(void* /*handle*/) { return 0; }
static int CairnCanMultiConn(void* /*handle*/) { return 1; }
static int CairnCanExtents(void* /*handle*/) { return 1; }
// A cache request reads the range (nbdkit calls .pread), which fills the
// decoded-chunk cache: a useful prefetch.
static int CairnCanCache(void* /*handle*/) { return NBDKIT_CACHE_EMULATE; }
static int CairnIsRotational(void* /*handle*/) { return 0; }

static int CairnPread(void* /*handle*/, void* buf, uint32_t count,
                      uint64_t offset, uint32_t /*flags*/) {
  try {
    Status s = g_image->Read(offset, count, static_cast<char*>(buf));
    if (!s.ok()) {
      int err = cairn::StatusToErrno(s);
      std::string code = absl::StatusCodeToString(s.code());
      nbdkit_error("[%s] read of %" PRIu32 " bytes at %" PRIu64
                   " failed, returning %s to the client: %s",
                   code.c_str(), count, offset, strerrorname_np(err),
                   std::string(s.message()).c_str());
      nbdkit_set_error(err);
      return -1;
    }
    return 0;
  } catch (...) {
    ReportException("pread");
    nbdkit_set_error(EIO);
    return -1;
  }
}

static int CairnExtents(void* /*handle*/, uint32_t count, uint64_t offset,
                        uint32_t flags, struct nbdkit_extents* extents) {
  try {
    auto runs =
        g_image->Extents(offset, count, (flags & NBDKIT_FLAG_REQ_ONE) != 0);
    if (!runs.ok()) {
      ReportStatus(runs.status());
      nbdkit_set_error(cairn::StatusToErrno(runs.status()));
      return -1;
    }
    for (const auto& r : *runs) {
      uint32_t type = r.zero ? (NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) : 0;
      if (nbdkit_add_extent(extents, r.offset, r.length, type) == -1) {
        return -1;  // nbdkit has reported the error
      }
    }
    return 0;
  } catch (...) {
    ReportException("extents");
    nbdkit_set_error(EIO);
    return -1;
  }
}

}  // extern "C"

namespace {

nbdkit_plugin MakePlugin() {
  nbdkit_plugin p = nbdkit_plugin();
  p.name = "cairn";
  p.longname = "Cairn backup export";
  p.version = "0.1.0";
  p.description =
      "Exports one backup from a Cairn chunk store read-only (decrypting "
      "with a key passed by descriptor or private file).";
  p.load = CairnLoad;
  p.unload = CairnUnload;
  p.config = CairnConfig;
  p.config_complete = CairnConfigComplete;
  p.config_help = cairn::kNbdPluginConfigHelp;
  p.thread_model = CairnThreadModel;
  p.open = CairnOpen;
  p.get_size = CairnGetSize;
  p.export_description = CairnExportDescription;
  p.can_write = CairnCanWrite;
  p.can_multi_conn = CairnCanMultiConn;
  p.can_extents = CairnCanExtents;
  p.can_cache = CairnCanCache;
  p.is_rotational = CairnIsRotational;
  p.pread = CairnPread;
  p.extents = CairnExtents;
  p.errno_is_preserved = 0;
  return p;
}

}  // namespace

static struct nbdkit_plugin plugin = MakePlugin();
NBDKIT_REGISTER_PLUGIN(plugin)
