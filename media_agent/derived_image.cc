#include "media_agent/derived_image.h"

#include <libnbd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/chunk_format.h"
#include "common/strings.h"
#include "common/utf8.h"

namespace cairn {
namespace {

constexpr char kDepthContext[] = "qemu:allocation-depth";
// Chunks asked about (and kept in memory) together.
constexpr size_t kBatch = 16;

struct NbdClose {
  void operator()(nbd_handle* h) const { nbd_close(h); }
};

std::string NbdError() {
  const char* e = nbd_get_error();
  return e != nullptr ? PrintableUtf8(e) : std::string("unknown libnbd error");
}

// Collects, from block status replies, which chunks have bytes written in
// the overlay (allocation depth 1) and how far the replies reached.
struct DepthScan {
  std::vector<bool>* written;
  uint64_t chunk_size;
  uint64_t answered_to;
};

int DepthCallback(void* user, const char* context, uint64_t offset,
                  uint32_t* entries, size_t n, int* /*error*/) {
  auto* scan = static_cast<DepthScan*>(user);
  if (std::string_view(context) != kDepthContext) return 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    const uint64_t length = entries[i];
    const uint32_t depth = entries[i + 1];
    if (depth == 1 && length > 0) {
      uint64_t first = offset / scan->chunk_size;
      uint64_t last = (offset + length - 1) / scan->chunk_size;
      for (uint64_t c = first; c <= last && c < scan->written->size(); ++c) {
        (*scan->written)[c] = true;
      }
    }
    offset += length;
  }
  scan->answered_to = std::max(scan->answered_to, offset);
  return 0;
}

}  // namespace

StatusOr<DerivedImageStats> WriteDerivedImage(
    const DerivedImageOptions& options, ChunkSink* sink, Manifest* manifest) {
  const Manifest* base = options.base;
  if (base == nullptr || sink == nullptr || manifest == nullptr) {
    return absl::InvalidArgumentError("derived image: no base, sink or output");
  }
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(options.new_id));
  if (base->encrypted() &&
      (options.key == nullptr ||
       options.key->fingerprint() != base->key_fingerprint)) {
    return absl::InvalidArgumentError(
        StrCat("derived image: the base ", base->backup_id,
               " is encrypted; its data key is needed to store the new image"));
  }
  const DataKey* key = base->encrypted() ? options.key : nullptr;

  std::unique_ptr<nbd_handle, NbdClose> h(nbd_create());
  if (h == nullptr) return absl::InternalError(StrCat("libnbd: ", NbdError()));
  if (nbd_add_meta_context(h.get(), kDepthContext) == -1) {
    return absl::InternalError(StrCat("libnbd: ", NbdError()));
  }
  std::vector<std::string> args = {options.qemu_nbd, "--read-only",
                                   "--allocation-depth", "--format=qcow2",
                                   options.overlay_path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (nbd_connect_systemd_socket_activation(h.get(), argv.data()) == -1) {
    return absl::UnavailableError(StrCat("opening the overlay ",
                                         options.overlay_path,
                                         " with qemu-nbd: ", NbdError()));
  }
  if (nbd_can_meta_context(h.get(), kDepthContext) != 1) {
    return absl::FailedPreconditionError(
        "qemu-nbd does not report qemu:allocation-depth (qemu 5.2 or later "
        "is needed)");
  }
  int64_t size = nbd_get_size(h.get());
  if (size < 0) return absl::InternalError(StrCat("libnbd: ", NbdError()));

  Manifest m;
  m.backup_id = options.new_id;
  m.source = options.source;
  m.kind = BackupKind::kCustomized;
  m.parent_id = base->backup_id;
  m.created_unix_us = options.created_unix_us;
  m.image_size = static_cast<uint64_t>(size);
  m.chunk_size = base->chunk_size;
  m.key_fingerprint = base->key_fingerprint;
  m.profile_ref = options.profile_ref;
  const uint64_t count = m.ChunkCount();
  m.chunks.assign(count, ChunkId::Zero());

  // Which chunks the overlay wrote to.
  std::vector<bool> written(count, false);
  const uint64_t chunk_size = m.chunk_size;
  DepthScan scan{&written, chunk_size, 0};
  while (scan.answered_to < m.image_size) {
    const uint64_t offset = scan.answered_to;
    // Ask for up to 1 GiB at a time; the server may answer for less.
    uint64_t want = std::min<uint64_t>(m.image_size - offset, 1ull << 30);
    nbd_extent_callback cb{
        .callback = DepthCallback, .user_data = &scan, .free = nullptr};
    if (nbd_block_status(h.get(), want, offset, cb, 0) == -1) {
      return absl::InternalError(
          StrCat("block status of the overlay at ", offset, ": ", NbdError()));
    }
    if (scan.answered_to <= offset) {
      return absl::InternalError(
          StrCat("qemu-nbd answered no allocation depth at offset ", offset));
    }
  }

  DerivedImageStats stats;
  stats.image_size = m.image_size;
  stats.chunks = count;
  const uint64_t base_count = base->chunks.size();

  // Chunks to confirm (reused base chunks) or to store, in batches.
  std::vector<uint64_t> batch;
  std::string buffer, stored;
  absl::flat_hash_set<ChunkId> stored_ids;  // put by this call
  auto flush_batch = [&]() -> Status {
    if (batch.empty()) return absl::OkStatus();
    std::vector<ChunkId> ids;
    std::vector<std::string> plain;  // for chunks read in this batch
    std::vector<bool> was_read;
    for (uint64_t i : batch) {
      bool reuse = !written[i] && i < base_count &&
                   base->ChunkLength(i) == m.ChunkLength(i);
      if (reuse) {
        m.chunks[i] = base->chunks[i];
        if (m.chunks[i].IsZero()) {
          ++stats.chunks_zero;
        } else {
          ids.push_back(m.chunks[i]);
          plain.emplace_back();
          was_read.push_back(false);
        }
        ++stats.chunks_reused;
        continue;
      }
      if (!written[i] && i >= base_count) {
        // Beyond the base and never written: zeros. (A chunk that straddles
        // the base's end is read, below.)
        ++stats.chunks_zero;
        continue;
      }
      buffer.resize(m.ChunkLength(i));
      if (nbd_pread(h.get(), buffer.data(), buffer.size(), i * chunk_size, 0) ==
          -1) {
        return absl::DataLossError(StrCat("reading chunk ", i, " (offset ",
                                          i * chunk_size,
                                          ") of the overlay: ", NbdError()));
      }
      ++stats.chunks_read;
      stats.bytes_read += buffer.size();
      if (IsAllZero(buffer)) {
        ++stats.chunks_zero;
        continue;
      }
      m.chunks[i] = ComputeChunkId(buffer, key);
      ids.push_back(m.chunks[i]);
      plain.push_back(buffer);
      was_read.push_back(true);
    }
    if (!ids.empty()) {
      CAIRN_ASSIGN_OR_RETURN(std::vector<bool> have, sink->HasChunks(ids));
      for (size_t j = 0; j < ids.size(); ++j) {
        if (have[j] || stored_ids.contains(ids[j])) continue;
        if (!was_read[j]) {
          return absl::DataLossError(StrCat("chunk ", ids[j].ToHex(),
                                            " of the base ", base->backup_id,
                                            " is missing from the store"));
        }
        ChunkEncodeOptions eo;
        eo.zstd_level = options.zstd_level;
        eo.key = key;
        CAIRN_RETURN_IF_ERROR(EncodeChunk(ids[j], plain[j], eo, &stored));
        CAIRN_RETURN_IF_ERROR(sink->PutChunk(ids[j], stored));
        stored_ids.insert(ids[j]);
        ++stats.chunks_new;
        stats.new_stored_bytes += stored.size();
      }
    }
    if (options.progress) {
      options.progress(std::min(m.image_size, (batch.back() + 1) * chunk_size),
                       m.image_size);
    }
    batch.clear();
    return absl::OkStatus();
  };
  for (uint64_t i = 0; i < count; ++i) {
    batch.push_back(i);
    if (batch.size() == kBatch) CAIRN_RETURN_IF_ERROR(flush_batch());
  }
  CAIRN_RETURN_IF_ERROR(flush_batch());
  CAIRN_ASSIGN_OR_RETURN(std::string encoded, EncodeManifest(m, key));
  CAIRN_RETURN_IF_ERROR(sink->Commit(m.backup_id, encoded));
  *manifest = std::move(m);
  return stats;
}

}  // namespace cairn
