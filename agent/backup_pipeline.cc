#include "agent/backup_pipeline.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/strings.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/chunk_format.h"
#include "common/coding.h"
#include "common/compression.h"
#include "common/crypto.h"
#include "common/env.h"

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
  std::string stamp = absl::FormatTime("%Y%m%dT%H%M%SZ", absl::FromUnixMicros(unix_us),
                                       absl::UTCTimeZone());
  return StrCat(clean, "-", stamp, "-", HexEncode(crypto::RandomString(2)));
}

StatusOr<BackupResult> RunBackup(const BackupRequest& req, ChunkSink* sink) {
  CAIRN_RETURN_IF_ERROR(ValidateChunkSize(req.chunk_size));
  CAIRN_RETURN_IF_ERROR(ValidateZstdLevel(req.zstd_level));
  auto start = std::chrono::steady_clock::now();
  int64_t now_us = absl::ToUnixMicros(absl::Now());

  CAIRN_ASSIGN_OR_RETURN(auto source, Env::Default()->NewRandomAccessFile(req.source_path));
  CAIRN_ASSIGN_OR_RETURN(uint64_t size, source->Size());

  Manifest m;
  m.backup_id = req.backup_id.empty() ? NewBackupId(req.source_name, now_us) : req.backup_id;
  CAIRN_RETURN_IF_ERROR(ValidateBackupId(m.backup_id));
  m.source = req.source_name;
  m.kind = req.parent_id.empty() ? BackupKind::kFull : BackupKind::kIncremental;
  m.parent_id = req.parent_id;
  m.created_unix_us = now_us;
  m.image_size = size;
  m.chunk_size = req.chunk_size;
  m.profile_ref = req.profile_ref;
  if (req.key != nullptr) m.key_fingerprint = req.key->fingerprint();
  const uint64_t count = m.ChunkCount();
  m.chunks.assign(count, ChunkId::Zero());

  const uint64_t per_batch =
      std::max<uint64_t>(1, req.batch_bytes / req.chunk_size);
  const uint64_t batches = (count + per_batch - 1) / per_batch;
  int threads = req.threads > 0 ? req.threads
                                : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<uint64_t>(threads, std::max<uint64_t>(batches, 1)));

  std::atomic<uint64_t> next_batch{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;
  BackupStats totals;

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
      ids.clear();
      slots.clear();
      for (uint64_t i = first; i < last; ++i) {
        std::string& buf = buffers[i - first];
        uint32_t len = m.ChunkLength(i);
        buf.resize(len);
        std::string_view got;
        Status s = source->Read(i * req.chunk_size, len, buf.data(), &got);
        if (s.ok() && got.size() != len) {
          s = absl::DataLossError(StrCat(req.source_path, " shrank during backup"));
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
    totals.chunks_zero += local.chunks_zero;
    totals.chunks_new += local.chunks_new;
    totals.chunks_present += local.chunks_present;
    totals.bytes_read += local.bytes_read;
    totals.new_plain_bytes += local.new_plain_bytes;
    totals.new_stored_bytes += local.new_stored_bytes;
  };

  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (!first_error.ok()) return first_error;

  CAIRN_ASSIGN_OR_RETURN(std::string encoded, EncodeManifest(m, req.key));
  CAIRN_RETURN_IF_ERROR(sink->Commit(m.backup_id, encoded));

  totals.image_size = size;
  totals.chunks_total = count;
  totals.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return BackupResult{std::move(m), totals};
}

}  // namespace cairn
