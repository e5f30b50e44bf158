#include "media_agent/consolidator.h"

#include <algorithm>
#include <set>

#include "common/strings.h"

namespace cairn {

StatusOr<ConsolidateResult> Consolidate(Repository* repo,
                                        const ConsolidateOptions& options) {
  CAIRN_ASSIGN_OR_RETURN(Manifest tip,
                         repo->LoadManifest(options.tip_id, options.key));
  if (tip.encrypted() && options.key == nullptr) {
    return absl::FailedPreconditionError(StrCat(
        "backup '", options.tip_id,
        "' is encrypted: its data key is needed to sign the synthetic full "
        "(no chunk is decrypted)"));
  }
  ConsolidateResult result;
  std::set<std::string> seen;
  const Manifest* cur = &tip;
  Manifest member;
  result.chain.push_back(tip.backup_id);
  seen.insert(tip.backup_id);
  while (cur->kind == BackupKind::kIncremental) {
    const std::string parent = cur->parent_id;
    if (!seen.insert(parent).second) {
      return absl::DataLossError(StrCat("backup chain of '", options.tip_id,
                                        "' has a cycle at '", parent, "'"));
    }
    auto m = repo->LoadManifest(parent, options.key);
    if (!m.ok()) {
      return Status(m.status().code(), StrCat("chain of '", options.tip_id,
                                              "' is broken at parent '", parent,
                                              "': ", m.status().message()));
    }
    if (m->source != tip.source || m->chunk_size != tip.chunk_size ||
        m->key_fingerprint != tip.key_fingerprint) {
      return absl::FailedPreconditionError(
          StrCat("backup '", parent,
                 "' is not of the same source, chunk size and key as '",
                 options.tip_id, "'"));
    }
    member = *std::move(m);
    cur = &member;
    result.chain.push_back(member.backup_id);
  }
  std::reverse(result.chain.begin(), result.chain.end());
  if (result.chain.size() == 1) {
    return absl::FailedPreconditionError(
        StrCat("backup '", options.tip_id, "' is already a ",
               BackupKindName(tip.kind), "; nothing to consolidate"));
  }

  Manifest synth = tip;
  synth.backup_id =
      options.new_id.empty() ? options.tip_id + ".full" : options.new_id;
  synth.kind = BackupKind::kSyntheticFull;
  synth.parent_id.clear();
  synth.consolidated_from = result.chain;
  if (options.created_unix_us != 0)
    synth.created_unix_us = options.created_unix_us;
  CAIRN_ASSIGN_OR_RETURN(
      std::string encoded,
      EncodeManifest(synth, tip.encrypted() ? options.key : nullptr));
  auto session = repo->BeginBackup();
  CAIRN_RETURN_IF_ERROR(session->Commit(synth.backup_id, encoded));
  result.manifest = std::move(synth);

  if (options.retire_chain) {
    for (const auto& id : result.chain) {
      CAIRN_RETURN_IF_ERROR(repo->DeleteBackup(id));
      result.retired.push_back(id);
    }
  }
  return result;
}

}  // namespace cairn
