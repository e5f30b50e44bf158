#include "common/sparse_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "common/coding.h"
#include "common/file_publish.h"
#include "common/strings.h"

namespace cairn {
namespace {

constexpr size_t kZeroBlock = 1 << 20;

const std::string& Zeros() {
  static const std::string* zeros = new std::string(kZeroBlock, '\0');
  return *zeros;
}

void UpdateWithZeros(crypto::Sha256Stream* hash, uint64_t count) {
  while (count > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(count, kZeroBlock));
    hash->Update(std::string_view(Zeros().data(), n));
    count -= n;
  }
}

std::string Hex(const crypto::Digest& d) {
  return HexEncode(
      std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

Status PreadFully(int fd, char* buf, size_t len, uint64_t offset,
                  const std::string& path) {
  while (len > 0) {
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "read", path);
    }
    if (n == 0) {
      return absl::DataLossError(StrCat(path, " shrank while it was read"));
    }
    buf += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status();
}

}  // namespace

StatusOr<SparseFileSummary> ReadDataExtents(
    const std::string& path, size_t max_piece,
    const std::function<Status(uint64_t offset, std::string_view data)>& fn) {
  if (max_piece == 0) return absl::InvalidArgumentError("max_piece is 0");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open", path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoToStatus(errno, "stat", path);
  SparseFileSummary summary;
  summary.file_size = static_cast<uint64_t>(st.st_size);
  crypto::Sha256Stream hash;
  std::vector<char> buf(max_piece);
  uint64_t pos = 0;
  while (pos < summary.file_size) {
    off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    uint64_t start, end;
    if (data < 0 && errno == ENXIO) break;  // only a hole remains
    if (data < 0 && errno == EINVAL) {      // no SEEK_DATA: all data
      start = pos;
      end = summary.file_size;
    } else if (data < 0) {
      return ErrnoToStatus(errno, "lseek(SEEK_DATA)", path);
    } else {
      start = static_cast<uint64_t>(data);
      off_t hole = ::lseek(fd, data, SEEK_HOLE);
      if (hole < 0) return ErrnoToStatus(errno, "lseek(SEEK_HOLE)", path);
      end = std::min<uint64_t>(static_cast<uint64_t>(hole), summary.file_size);
    }
    UpdateWithZeros(&hash, start - pos);
    for (uint64_t off = start; off < end;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(end - off, max_piece));
      CAIRN_RETURN_IF_ERROR(PreadFully(fd, buf.data(), n, off, path));
      std::string_view piece(buf.data(), n);
      hash.Update(piece);
      CAIRN_RETURN_IF_ERROR(fn(off, piece));
      summary.data_bytes += n;
      off += n;
    }
    pos = end;
  }
  UpdateWithZeros(&hash, summary.file_size - pos);
  summary.sha256_hex = Hex(hash.Finish());
  return summary;
}

StatusOr<std::unique_ptr<SparseFileReceiver>> SparseFileReceiver::Create(
    const std::string& destination, bool overwrite) {
  std::filesystem::path dest(destination);
  if (dest.filename().empty()) {
    return absl::InvalidArgumentError(
        StrCat("'", destination, "' names a directory, not a file"));
  }
  std::string dir = dest.parent_path().string();
  if (dir.empty()) dir = ".";
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(
        StrCat("destination directory ", dir, " does not exist"));
  }
  if (!overwrite && ::lstat(destination.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(
        StrCat(destination, " exists (use --force to replace it)"));
  }
  std::string tmpl =
      StrCat(dir, "/.", dest.filename().string(), ".cairn-XXXXXX");
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "mkostemp", tmpl);
  ::fchmod(fd, 0600);
  return std::unique_ptr<SparseFileReceiver>(
      new SparseFileReceiver(fd, tmpl, destination, overwrite));
}

SparseFileReceiver::SparseFileReceiver(int fd, std::string temp_path,
                                       std::string destination, bool overwrite)
    : fd_(fd),
      temp_path_(std::move(temp_path)),
      destination_(std::move(destination)),
      overwrite_(overwrite) {}

SparseFileReceiver::~SparseFileReceiver() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void SparseFileReceiver::HashZeros(uint64_t count) {
  UpdateWithZeros(&hash_, count);
}

Status SparseFileReceiver::Write(uint64_t offset, std::string_view data) {
  if (committed_ || fd_ < 0) {
    return absl::FailedPreconditionError("the file is already committed");
  }
  if (offset < end_) {
    return absl::InvalidArgumentError(
        StrCat("extent at ", offset, " overlaps or precedes the one ending at ",
               end_));
  }
  HashZeros(offset - end_);
  hash_.Update(data);
  uint64_t pos = offset;
  while (!data.empty()) {
    ssize_t n =
        ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "write", temp_path_);
    }
    data.remove_prefix(static_cast<size_t>(n));
    pos += static_cast<uint64_t>(n);
  }
  received_ += pos - offset;
  end_ = pos;
  return Status();
}

Status SparseFileReceiver::Commit(uint64_t file_size,
                                  std::string_view sha256_hex) {
  if (committed_ || fd_ < 0) {
    return absl::FailedPreconditionError("the file is already committed");
  }
  if (file_size < end_) {
    return absl::InvalidArgumentError(StrCat("file size ", file_size,
                                             " is below the data received (",
                                             end_, " bytes)"));
  }
  HashZeros(file_size - end_);
  end_ = file_size;
  std::string got = Hex(hash_.Finish());
  if (got != sha256_hex) {
    return absl::DataLossError(
        StrCat("the received file's SHA-256 is ", got, ", the sender's ",
               sha256_hex, ": the copy is damaged and was discarded"));
  }
  if (::ftruncate(fd_, static_cast<off_t>(file_size)) != 0) {
    return ErrnoToStatus(errno, "truncate", temp_path_);
  }
  if (::fsync(fd_) != 0) return ErrnoToStatus(errno, "fsync", temp_path_);
  ::close(fd_);
  fd_ = -1;
  CAIRN_RETURN_IF_ERROR(PublishFile(temp_path_, destination_, overwrite_));
  committed_ = true;
  return Status();
}

}  // namespace cairn
