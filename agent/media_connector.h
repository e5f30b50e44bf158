// MediaConnector: how a job reaches the media agent named in its
// MediaSessionSpec - its data path (MediaLink) for backups and restores,
// its browse service (BackupFileSource) for file restores. The job runner knows
// only this interface; the daemon uses GrpcMediaConnector
// (agent/grpc_media_connector.h), tests may wrap it to intercept calls.
//
// Thread safety: implementations are thread-safe.
#ifndef CAIRN_AGENT_MEDIA_CONNECTOR_H_
#define CAIRN_AGENT_MEDIA_CONNECTOR_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "agent/agent_job.h"
#include "agent/backup_file_source.h"
#include "common/chunk_sink.h"
#include "common/chunk_source.h"
#include "common/status.h"

namespace cairn {

// One job's connection to a media agent, authorized by the job's ticket.
// sink() for a backup session, source() for a restore session and for a
// backup's parent manifest. Both pointers live as long as the link.
class MediaLink {
 public:
  virtual ~MediaLink() = default;
  virtual ChunkSink* sink() = 0;
  virtual const ChunkSource* source() const = 0;
  // After a successful sink()->Commit: the media agent's signed commit
  // receipt (common/commit_receipt.h), to forward to the server; empty if
  // the media agent gives none (the embedded one).
  virtual std::string commit_receipt() const { return std::string(); }
};

class MediaConnector {
 public:
  virtual ~MediaConnector() = default;
  // A link for `spec`. Connecting is lazy: an unreachable media agent shows
  // up as Unavailable on the link's first call.
  virtual StatusOr<std::unique_ptr<MediaLink>> Connect(
      const MediaSessionSpec& spec) = 0;
  // The files of one file system (`partition`; unset: the root one) of the
  // backup named by `spec`'s BROWSE ticket, for a file-restore job. The
  // source lives as long as the caller keeps it. Unimplemented unless
  // overridden.
  virtual StatusOr<std::unique_ptr<BackupFileSource>> ConnectFiles(
      const MediaSessionSpec& spec, std::optional<uint32_t> partition) {
    return absl::UnimplementedError(
        "this agent cannot restore files from a backup");
  }
};

}  // namespace cairn

#endif  // CAIRN_AGENT_MEDIA_CONNECTOR_H_
