#include "agent/backup_pipeline.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/chunk_format.h"
#include "common/coding.h"
#include "common/compression.h"
#include "common/crypto.h"
#include "common/env.h"
#include "common/strings.h"

namespace cairn {

std::string NewBackupId(const std::string& source_name, int64_t unix_us) {
  std::string clean;
  for (char c : source_name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    clean.push_back(ok ? c : '_');
    if (clean.size() >= 64) break;
  }
  while (!clean.empty() && clean[0] == '.') clean.erase(0, 1);
  if (clean.empty()) clean = "backup";
  std::string stamp = absl::FormatTime(
      "%Y%m%dT%H%M%SZ", absl::FromUnixMicros(unix_us), absl::UTCTimeZone());
  return StrCat(clean, "-", stamp, "-", HexEncode(crypto::RandomString(2)));
}

StatusOr<std::string> SourceState(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) return std::string();
  return StrCat("file dev=", static_cast<uint64_t>(st.st_dev),
                " ino=", static_cast<uint64_t>(st.st_ino),
                " size=", static_cast<int64_t>(st.st_size),
                " mtime=", static_cast<int64_t>(st.st_mtim.tv_sec), ".",
                static_cast<int64_t>(st.st_mtim.tv_nsec),
                " ctime=", static_cast<int64_t>(st.st_ctim.tv_sec), ".",
                static_cast<int64_t>(st.st_ctim.tv_nsec));
}

namespace {

// An unchanged image file: the parent's chunk table is the answer. Every id
// still goes through HasChunks, which pins the chunks against GC and proves
// they are still stored (a pruned and collected chunk makes this fail, and
// the caller falls back to reading).
StatusOr<bool> ReuseParent(const BackupRequest& req, ChunkSink* sink,
                           Manifest* m) {
  const Manifest& p = *req.parent;
  if (req.force_read || m->source_state.empty() ||
      p.source_state != m->source_state || p.image_size != m->image_size ||
      p.chunk_size != m->chunk_size ||
      p.key_fingerprint != m->key_fingerprint) {
    return false;
  }
  std::vector<ChunkId> ids;
  for (const ChunkId& id : p.chunks) {
    if (!id.IsZero()) ids.push_back(id);
  }
  CAIRN_ASSIGN_OR_RETURN(auto present, sink->HasChunks(ids));
  for (bool b : present) {
    if (!b) return false;
  }
  m->chunks = p.chunks;
  return true;
}

// Reads every chunk of the source with parallel workers, fills m->chunks and
// sends the sink what it lacks. Adds to *out.
Status ReadAndSend(const BackupRequest& req, const RandomAccessFile& source,
                   ChunkSink* sink, Manifest* manifest, BackupStats* out) {
  Manifest& m = *manifest;
  const uint64_t count = m.chunks.size();
  int threads =
      req.threads > 0
          ? req.threads
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Memory: a worker holds its batch plus about two chunks of scratch
  // (compressed and encrypted copies). Fewer workers and smaller batches
  // keep the total under the budget whatever the core count or image size.
  const uint64_t cs = req.chunk_size;
  const uint64_t budget = std::max<uint64_t>(req.memory_budget, 3 * cs);
  threads = static_cast<int>(
      std::min<uint64_t>(threads, std::max<uint64_t>(1, budget / (3 * cs))));
  const uint64_t per_worker = budget / static_cast<uint64_t>(threads);
  const uint64_t batch_bytes =
      std::min<uint64_t>(req.batch_bytes, std::max(cs, per_worker - 2 * cs));
  const uint64_t per_batch = std::max<uint64_t>(1, batch_bytes / cs);
  const uint64_t batches = (count + per_batch - 1) / per_batch;
  threads = static_cast<int>(
      std::min<uint64_t>(threads, std::max<uint64_t>(batches, 1)));

  // Read-ahead: while a worker hashes and compresses, the kernel fetches the
  // batch the next free worker will take (an advisory fd; errors ignored).
  int readahead_fd = ::open(req.source_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (readahead_fd >= 0)
    ::posix_fadvise(readahead_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  auto prefetch = [&](uint64_t batch) {
    if (readahead_fd < 0 || batch >= batches) return;
    ::posix_fadvise(readahead_fd, static_cast<off_t>(batch * per_batch * cs),
                    static_cast<off_t>(per_batch * cs), POSIX_FADV_WILLNEED);
  };
  for (int t = 0; t < threads; ++t) prefetch(static_cast<uint64_t>(t));

  std::atomic<uint64_t> next_batch{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;

  auto worker = [&]() {
    std::vector<std::string> buffers(per_batch);
    std::vector<ChunkId> ids;
    std::vector<size_t> slots;
    std::string stored;
    BackupStats local;
    ChunkEncodeOptions enc{req.zstd_level, req.key};
    auto fail = [&](Status s) {
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.ok()) first_error = std::move(s);
      failed = true;
    };
    while (!failed) {
      uint64_t b = next_batch.fetch_add(1);
      if (b >= batches) break;
      uint64_t first = b * per_batch;
      uint64_t last = std::min(count, first + per_batch);
      prefetch(b + static_cast<uint64_t>(threads));
      ids.clear();
      slots.clear();
      for (uint64_t i = first; i < last; ++i) {
        std::string& buf = buffers[i - first];
        uint32_t len = m.ChunkLength(i);
        buf.resize(len);
        std::string_view got;
        Status s = source.Read(i * req.chunk_size, len, buf.data(), &got);
        if (s.ok() && got.size() != len) {
          s = absl::DataLossError(
              StrCat(req.source_path, " shrank during backup"));
        }
        if (!s.ok()) return fail(s);
        local.bytes_read += len;
        if (IsAllZero(buf)) {
          ++local.chunks_zero;
          if (req.progress) req.progress->Add(len);
          continue;
        }
        ChunkId id = ComputeChunkId(buf, req.key);
        m.chunks[i] = id;  // distinct index per worker: no race
        // The same content twice in one batch is looked up and sent once.
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
          ids.push_back(id);
          slots.push_back(i - first);
        } else {
          ++local.chunks_present;
          if (req.progress) req.progress->Add(len);
        }
      }
      if (ids.empty()) continue;
      auto present = sink->HasChunks(ids);
      if (!present.ok()) return fail(present.status());
      for (size_t k = 0; k < ids.size(); ++k) {
        const std::string& plain = buffers[slots[k]];
        if ((*present)[k]) {
          ++local.chunks_present;
        } else {
          Status s = EncodeChunk(ids[k], plain, enc, &stored);
          if (s.ok()) s = sink->PutChunk(ids[k], stored);
          if (!s.ok()) return fail(s);
          ++local.chunks_new;
          local.new_plain_bytes += plain.size();
          local.new_stored_bytes += stored.size();
        }
        if (req.progress) req.progress->Add(plain.size());
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    out->chunks_zero += local.chunks_zero;
    out->chunks_new += local.chunks_new;
    out->chunks_present += local.chunks_present;
    out->bytes_read += local.bytes_read;
    out->new_plain_bytes += local.new_plain_bytes;
    out->new_stored_bytes += local.new_stored_bytes;
  };

  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (readahead_fd >= 0) ::close(readahead_fd);
  return first_error;
}

}  // namespace

StatusOr<BackupResult> RunBackup(const BackupRequest& req, ChunkSink* sink) {
  CAIRN_RETURN_IF_ERROR(ValidateChunkSize(req.chunk_size));
  CAIRN_RETURN_IF_ERROR(ValidateZstdLevel(req.zstd_level));
  auto start = std::chrono::steady_clock::now();
  int64_t now_us = absl::ToUnixMicros(absl::Now());

  CAIRN_ASSIGN_OR_RETURN(auto source,
                         Env::Default()->NewRandomAccessFile(req.source_path));
  CAIRN_ASSIGN_OR_RETURN(uint64_t size, source->Size());

  Manifest m;
  m.backup_id = req.backup_id.empty() ? NewBackupId(req.source_name, now_us)
                                      : req.backup_id;
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(m.backup_id));
  m.source = req.source_name;
  m.kind = req.parent == nullptr ? BackupKind::kFull : BackupKind::kIncremental;
  if (req.parent != nullptr) m.parent_id = req.parent->backup_id;
  CAIRN_ASSIGN_OR_RETURN(m.source_state, SourceState(req.source_path));
  m.created_unix_us = now_us;
  m.image_size = size;
  m.chunk_size = req.chunk_size;
  m.profile_ref = req.profile_ref;
  if (req.key != nullptr) m.key_fingerprint = req.key->fingerprint();
  const uint64_t count = m.ChunkCount();
  BackupStats totals;
  if (req.parent != nullptr) {
    CAIRN_ASSIGN_OR_RETURN(totals.source_unchanged, ReuseParent(req, sink, &m));
  }
  if (totals.source_unchanged) {
    for (const ChunkId& id : m.chunks) {
      if (id.IsZero()) {
        ++totals.chunks_zero;
      } else {
        ++totals.chunks_present;
      }
    }
    if (req.progress) req.progress->Add(size);
  } else {
    m.chunks.assign(count, ChunkId::Zero());
    CAIRN_RETURN_IF_ERROR(ReadAndSend(req, *source, sink, &m, &totals));
  }

  CAIRN_ASSIGN_OR_RETURN(std::string encoded, EncodeManifest(m, req.key));
  CAIRN_RETURN_IF_ERROR(sink->Commit(m.backup_id, encoded));

  totals.image_size = size;
  totals.chunks_total = count;
  totals.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return BackupResult{std::move(m), totals};
}

}  // namespace cairn
