// Consolidator: turns a chain (a full and its incrementals) into one
// synthetic full backup without reading, decompressing or decrypting any
// chunk - only manifests are read and written.
//
// Every manifest already lists every chunk of its image, so the synthetic
// full is the tip's chunk table under a new id, with kind synthetic-full, no
// parent, the tip's point in time, and the ids of the chain it replaces.
// The chain is checked first: every member must be readable and share the
// tip's source, chunk size and key. Chunk presence is checked by stat (the
// commit), never by opening a chunk file.
//
// Thread safety: as safe as a backup (it commits through a BackupSession).
#ifndef CAIRN_MEDIA_AGENT_CONSOLIDATOR_H_
#define CAIRN_MEDIA_AGENT_CONSOLIDATOR_H_

#include <string>
#include <vector>

#include "common/data_key.h"
#include "common/manifest.h"
#include "common/status.h"
#include "media_agent/repository.h"

namespace cairn {

struct ConsolidateOptions {
  std::string tip_id;
  std::string new_id;            // empty: "<tip_id>.full"
  const DataKey* key = nullptr;  // needed to sign an encrypted chain
  bool retire_chain = false;     // delete the chain's manifests after
  int64_t created_unix_us = 0;   // 0: the tip's time
};

struct ConsolidateResult {
  Manifest manifest;
  std::vector<std::string> chain;    // oldest (the full) first
  std::vector<std::string> retired;  // manifests removed
};

StatusOr<ConsolidateResult> Consolidate(Repository* repo,
                                        const ConsolidateOptions& options);

}  // namespace cairn

#endif  // CAIRN_MEDIA_AGENT_CONSOLIDATOR_H_
