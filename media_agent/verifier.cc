#include "media_agent/verifier.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "common/chunk_format.h"

namespace cairn {

StatusOr<VerifyReport> VerifyRepository(Repository* repo,
                                        const VerifyOptions& options) {
  VerifyReport report;
  std::vector<std::string> ids = options.backup_ids;
  if (ids.empty()) {
    CAIRN_ASSIGN_OR_RETURN(ids, repo->manifests().List());
  } else {
    for (const auto& id : ids) {
      CAIRN_ASSIGN_OR_RETURN(bool exists, repo->manifests().Exists(id));
      if (!exists) return absl::NotFoundError("no backup '" + id + "'");
    }
  }

  // Which backups reference each chunk, and whether we can deep-check it.
  struct ChunkUse {
    std::vector<std::string> backups;
    bool key_matches = false;  // encrypted with options.key
  };
  absl::flat_hash_map<ChunkId, ChunkUse> uses;
  std::set<std::string> damaged;
  for (const auto& id : ids) {
    const DataKey* key = nullptr;
    auto m = repo->LoadManifest(id, nullptr);
    if (m.ok() && m->encrypted() && options.key != nullptr &&
        m->key_fingerprint == options.key->fingerprint()) {
      key = options.key;
      m = repo->LoadManifest(id, key);  // also verifies the signature
    }
    if (!m.ok()) {
      report.bad_manifests.push_back({id, std::string(m.status().message())});
      damaged.insert(id);
      continue;
    }
    ++report.backups_checked;
    for (const ChunkId& c : m->chunks) {
      if (c.IsZero()) continue;
      ChunkUse& use = uses[c];
      if (use.backups.empty() || use.backups.back() != id)
        use.backups.push_back(id);
      if (key != nullptr) use.key_matches = true;
    }
  }

  std::vector<std::pair<ChunkId, const ChunkUse*>> work;
  work.reserve(uses.size());
  for (const auto& [id, use] : uses) work.emplace_back(id, &use);
  std::sort(work.begin(), work.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  std::atomic<size_t> next{0};
  std::atomic<uint64_t> deep{0}, bytes{0};
  std::mutex mu;
  std::vector<BadChunk> bad;
  auto worker = [&]() {
    std::string plain;
    while (true) {
      size_t i = next.fetch_add(1);
      if (i >= work.size()) return;
      const auto& [id, use] = work[i];
      std::string error;
      auto stored = repo->chunks().Get(id);
      if (!stored.ok()) {
        error = absl::IsNotFound(stored.status())
                    ? "missing"
                    : std::string(stored.status().message());
      } else {
        bytes += stored->size();
        auto header = CheckStoredChunk(*stored);
        bool encrypted = header.ok() && (header->flags & kChunkEncrypted);
        if (!encrypted || use->key_matches) {
          Status s = DecodeChunk(id, *stored, encrypted ? options.key : nullptr,
                                 &plain);
          if (!s.ok()) error = std::string(s.message());
          ++deep;
        }
      }
      if (options.progress != nullptr) options.progress->Add(1);
      if (!error.empty()) {
        std::lock_guard<std::mutex> lock(mu);
        bad.push_back({id, repo->chunks().ChunkPath(id), error, use->backups});
      }
    }
  };
  int threads = std::max(1, options.threads);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();

  std::sort(bad.begin(), bad.end(),
            [](const BadChunk& a, const BadChunk& b) { return a.id < b.id; });
  for (const auto& b : bad)
    damaged.insert(b.affected_backups.begin(), b.affected_backups.end());
  report.chunks_checked = work.size();
  report.chunks_deep_checked = deep.load();
  report.stored_bytes_checked = bytes.load();
  report.bad_chunks = std::move(bad);
  report.damaged_backups.assign(damaged.begin(), damaged.end());
  return report;
}

}  // namespace cairn
