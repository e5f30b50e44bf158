// BrowseClient: cairnctl's side of browsing a backup's files. It asks the
// storage manager for a browse ticket (Admin.OpenBrowse through AdminClient)
// and then talks to the media agent that holds the backup (BrowseService,
// proto/cairn/v1/browse.proto) with the same admin credential, over mutual
// TLS. The data key never reaches cairnctl: it is inside the ticket, wrapped
// for the media agent.
//
// Thread safety: not thread-safe (one command at a time).
#ifndef CAIRN_CLI_BROWSE_CLIENT_H_
#define CAIRN_CLI_BROWSE_CLIENT_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cairn/v1/admin.pb.h"
#include "cairn/v1/browse.grpc.pb.h"
#include "cli/admin_client.h"
#include "common/status.h"

namespace cairn::ctl {

class BrowseClient {
 public:
  // `admin` is not owned and must outlive this. `server` (HOST:PORT) is
  // dialled for grants with an empty media address (the embedded media
  // agent); `cred_dir` is the admin credential.
  BrowseClient(AdminClient* admin, std::string server, std::string cred_dir,
               std::chrono::milliseconds timeout);

  // Tickets for these backups, fetched in one call and kept.
  Status Open(const std::vector<std::string>& backup_ids);

  StatusOr<v1::BrowseListResponse> List(const std::string& backup_id,
                                        std::optional<uint32_t> partition,
                                        const std::string& path);
  StatusOr<v1::BrowseFindResponse> Find(const std::string& backup_id,
                                        const std::string& pattern,
                                        std::optional<uint32_t> partition,
                                        uint32_t limit);
  // Streams a regular file: `on_entry` once, then `on_data` per piece.
  // No deadline (a file may be large); keepalive notices a dead peer.
  Status Read(const std::string& backup_id, std::optional<uint32_t> partition,
              const std::string& path,
              const std::function<Status(const v1::FileEntry&)>& on_entry,
              const std::function<Status(std::string_view)>& on_data);
  StatusOr<v1::BrowseCatalogueResponse> Catalogue(const std::string& backup_id,
                                                  bool rebuild);

 private:
  struct Grant {
    v1::BrowseGrantInfo info;
    v1::BrowseService::Stub* stub = nullptr;
  };
  StatusOr<Grant*> GrantFor(const std::string& backup_id);
  StatusOr<v1::BrowseService::Stub*> StubFor(const std::string& address);
  Status FromGrpc(const grpc::Status& s, const Grant& g,
                  std::string_view what) const;

  AdminClient* const admin_;
  const std::string server_;
  const std::string cred_dir_;
  const std::chrono::milliseconds timeout_;
  std::map<std::string, Grant> grants_;  // by backup id
  std::map<std::string, std::unique_ptr<v1::BrowseService::Stub>> stubs_;
};

}  // namespace cairn::ctl

#endif  // CAIRN_CLI_BROWSE_CLIENT_H_
