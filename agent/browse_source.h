// BrowseSource: a BackupFileSource (agent/backup_file_source.h) over the
// media agent's BrowseService (proto/cairn/v1/browse.proto), for the
// agent's FILE_RESTORE jobs. Every request carries the job's BROWSE ticket
// (issued by the storage manager for this agent's identity); the media agent
// checks it against the caller's certificate and decrypts, so the agent
// never holds the data key.
//
// Deadlines: List has `deadline` per call; Read is a stream without one (a
// file may be large) and stops at the first error its callbacks return.
// Errors keep the media agent's code and name its address.
//
// Thread safety: thread-safe (gRPC stubs are).
#ifndef CAIRN_AGENT_BROWSE_SOURCE_H_
#define CAIRN_AGENT_BROWSE_SOURCE_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "agent/backup_file_source.h"
#include "cairn/v1/browse.grpc.pb.h"

namespace cairn {

class BrowseSource final : public BackupFileSource {
 public:
  // `channel` is shared; `address` names the media agent in errors;
  // `ticket` is the serialized SignedTicket (BROWSE); `partition` selects
  // the file system (unset: the root one).
  BrowseSource(std::shared_ptr<grpc::Channel> channel, std::string address,
               std::string ticket, std::optional<uint32_t> partition,
               std::chrono::milliseconds deadline = std::chrono::seconds(60));

  StatusOr<BackupDirectoryListing> List(const std::string& path) override;
  Status Read(const std::string& path,
              const std::function<Status(const BackupFileEntry&)>& on_entry,
              const std::function<Status(std::string_view)>& on_data) override;

 private:
  Status FromGrpc(const grpc::Status& s, std::string_view what) const;
  v1::PartitionRef PartitionRef() const;

  std::unique_ptr<v1::BrowseService::Stub> stub_;
  const std::string address_;
  const std::string ticket_;
  const std::optional<uint32_t> partition_;
  const std::chrono::milliseconds deadline_;
};

// The restore-relevant fields of a browse.proto FileEntry.
BackupFileEntry BackupFileEntryFromProto(const v1::FileEntry& entry);

}  // namespace cairn

#endif  // CAIRN_AGENT_BROWSE_SOURCE_H_
