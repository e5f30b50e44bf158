#include "agent/browse_source.h"

#include "common/strings.h"

namespace cairn {

BackupFileEntry BackupFileEntryFromProto(const v1::FileEntry& e) {
  BackupFileEntry out;
  out.path = e.path();
  switch (e.type()) {
    case v1::FileEntry::REGULAR:
      out.type = BackupFileEntry::Type::kRegular;
      break;
    case v1::FileEntry::DIRECTORY:
      out.type = BackupFileEntry::Type::kDirectory;
      break;
    case v1::FileEntry::SYMLINK:
      out.type = BackupFileEntry::Type::kSymlink;
      break;
    default:
      out.type = BackupFileEntry::Type::kOther;
      break;
  }
  out.size = e.size();
  out.mode = e.mode();
  out.uid = e.uid();
  out.gid = e.gid();
  out.atime_ns = e.atime_ns();
  out.mtime_ns = e.mtime_ns();
  out.symlink_target = e.symlink_target();
  return out;
}

BrowseSource::BrowseSource(std::shared_ptr<grpc::Channel> channel,
                           std::string address, std::string ticket,
                           std::optional<uint32_t> partition,
                           std::chrono::milliseconds deadline)
    : stub_(v1::BrowseService::NewStub(channel)),
      address_(std::move(address)),
      ticket_(std::move(ticket)),
      partition_(partition),
      deadline_(deadline) {}

v1::PartitionRef BrowseSource::PartitionRef() const {
  v1::PartitionRef ref;
  if (partition_) ref.set_number(*partition_);
  return ref;
}

Status BrowseSource::FromGrpc(const grpc::Status& s,
                              std::string_view what) const {
  if (s.ok()) return Status();
  auto code = static_cast<absl::StatusCode>(s.error_code());
  if (code == absl::StatusCode::kUnimplemented) {
    return absl::UnimplementedError(StrCat("media agent ", address_,
                                           " does not serve browse (",
                                           s.error_message(), ")"));
  }
  return Status(code, StrCat(what, " at media agent ", address_, ": ",
                             s.error_message()));
}

StatusOr<BackupDirectoryListing> BrowseSource::List(const std::string& path) {
  v1::BrowseListRequest req;
  req.set_ticket(ticket_);
  *req.mutable_partition() = PartitionRef();
  req.set_path(path);
  v1::BrowseListResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline_);
  CAIRN_RETURN_IF_ERROR(
      FromGrpc(stub_->List(&ctx, req, &resp), StrCat("listing ", path)));
  BackupDirectoryListing out;
  out.directory = BackupFileEntryFromProto(resp.directory());
  out.entries.reserve(resp.entries_size());
  for (const v1::FileEntry& e : resp.entries()) {
    out.entries.push_back(BackupFileEntryFromProto(e));
  }
  return out;
}

Status BrowseSource::Read(
    const std::string& path,
    const std::function<Status(const BackupFileEntry&)>& on_entry,
    const std::function<Status(std::string_view)>& on_data) {
  v1::BrowseReadRequest req;
  req.set_ticket(ticket_);
  *req.mutable_partition() = PartitionRef();
  req.set_path(path);
  grpc::ClientContext ctx;  // no deadline: the stream lasts the file
  auto reader = stub_->Read(&ctx, req);
  v1::BrowseReadResponse piece;
  bool first = true;
  Status failed;
  while (reader->Read(&piece)) {
    if (first) {
      if (!piece.has_entry()) {
        failed = absl::DataLossError(StrCat("media agent ", address_,
                                            " sent data of ", path,
                                            " before its entry"));
        break;
      }
      first = false;
      failed = on_entry(BackupFileEntryFromProto(piece.entry()));
      if (!failed.ok()) break;
    }
    if (!piece.data().empty()) {
      failed = on_data(piece.data());
      if (!failed.ok()) break;
    }
  }
  if (!failed.ok()) {
    ctx.TryCancel();
    reader->Finish().ok();  // the local error is the one to report
    return failed;
  }
  CAIRN_RETURN_IF_ERROR(FromGrpc(reader->Finish(), StrCat("reading ", path)));
  if (first) {
    return absl::DataLossError(StrCat("media agent ", address_,
                                      " ended the read of ", path,
                                      " without its entry"));
  }
  return Status();
}

}  // namespace cairn
