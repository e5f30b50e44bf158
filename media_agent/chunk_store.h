// ChunkStore: content-addressed chunk files on a local directory.
//
// Layout under the repository root (docs/formats/store-layout.md):
//   chunks/<first 4 hex digits of id>/<64 hex digits of id>
//   tmp/   chunk and manifest files being written
// A chunk becomes visible only when complete: it is written to tmp/, fsynced,
// then renamed into chunks/. The directory fsyncs that make renames durable
// are batched: SyncPending() issues them, and a backup's commit calls it
// before its manifest is written, so no committed manifest can name a chunk
// whose rename a crash could undo.
//
// The store holds stored-form bytes (docs/formats/chunk.md) and never a key.
//
// Thread safety: thread-safe.
#ifndef CAIRN_MEDIA_AGENT_CHUNK_STORE_H_
#define CAIRN_MEDIA_AGENT_CHUNK_STORE_H_

#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/chunk_id.h"
#include "common/env.h"
#include "common/status.h"

namespace cairn {

class ChunkStore {
 public:
  // `env` is not owned and must outlive the store. REQUIRES: `root`/chunks
  // and `root`/tmp exist (Repository::Open creates them).
  ChunkStore(Env* env, std::string root);

  std::string ChunkPath(const ChunkId& id) const;

  // Whether the chunk's file exists (a stat; the file is not opened).
  StatusOr<bool> Has(const ChunkId& id) const;

  // Stores `stored` under `id` unless already present. The stored form is
  // checked (header and CRC) first, so damaged bytes are refused
  // (InvalidArgument) and never written. ResourceExhausted when the disk is
  // full; the store is then unchanged (the temp file is removed).
  Status Put(const ChunkId& id, std::string_view stored);

  // Reads a chunk's stored bytes and checks header and CRC. NotFound if
  // absent; DataLoss naming the file if damaged.
  StatusOr<std::string> Get(const ChunkId& id) const;

  // Removes a chunk file (garbage collection). NotFound if absent.
  Status Remove(const ChunkId& id);

  // Makes every Put so far durable (fsync of the directories they touched).
  Status SyncPending();

  // Calls `fn` for every chunk file; names that are not chunk ids are
  // skipped. Stops at and returns the first error `fn` returns.
  Status ForEach(const std::function<Status(const ChunkId&)>& fn) const;

  // Removes leftover temp files (from a crash). Called at open.
  Status CleanTemp();

 private:
  std::string FanoutDir(const ChunkId& id) const;
  std::string TempPath(std::string_view stem);

  Env* const env_;
  const std::string root_;
  const std::string chunks_dir_;
  const std::string tmp_dir_;

  std::mutex mu_;
  std::set<std::string> pending_sync_dirs_;  // guarded by mu_
  std::vector<bool> fanout_exists_;          // guarded by mu_; 65536 entries
  uint64_t temp_counter_ = 0;                // guarded by mu_
};

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_CHUNK_STORE_H_
