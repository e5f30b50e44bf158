// Verifier: proves that the backups in a repository can be restored.
//
// Every chunk a selected manifest references is read and checked:
//  - always: header CRC and payload CRC (no key needed);
//  - unencrypted chunks: also decompressed and re-hashed against the id;
//  - encrypted chunks, when the matching key is given: GCM tag, and the
//    HMAC id of the plaintext.
// The report names each bad or missing chunk, its file, what is wrong, and
// every backup it affects. Damaged manifests are reported too.
//
// Thread safety: VerifyRepository is safe to run alongside backups and GC
// (a chunk removed by GC after being listed is reported only if a manifest
// still references it).
#ifndef CAIRN_MEDIA_AGENT_VERIFIER_H_
#define CAIRN_MEDIA_AGENT_VERIFIER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/chunk_id.h"
#include "common/data_key.h"
#include "common/progress.h"
#include "common/status.h"
#include "media_agent/repository.h"

namespace cairn {

struct VerifyOptions {
  std::vector<std::string> backup_ids;  // empty: every backup
  const DataKey* key = nullptr;         // not owned; enables deep checks
  int threads = 2;
  ProgressCounter* progress = nullptr;  // optional, not owned; counts chunks
};

struct BadChunk {
  ChunkId id;
  std::string path;
  std::string error;  // "missing", "payload CRC mismatch", ...
  std::vector<std::string> affected_backups;
};

struct BadManifest {
  std::string backup_id;
  std::string error;
};

struct VerifyReport {
  uint64_t backups_checked = 0;
  uint64_t chunks_checked = 0;
  uint64_t chunks_deep_checked = 0;  // decoded and re-hashed
  uint64_t stored_bytes_checked = 0;
  std::vector<BadChunk> bad_chunks;
  std::vector<BadManifest> bad_manifests;
  std::vector<std::string> damaged_backups;  // sorted, unique
  bool ok() const { return bad_chunks.empty() && bad_manifests.empty(); }
};

// NotFound if a requested backup id does not exist. Damage is not an error
// status: it is what the report is for.
StatusOr<VerifyReport> VerifyRepository(Repository* repo,
                                        const VerifyOptions& options);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_VERIFIER_H_
