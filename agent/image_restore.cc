#include "agent/image_restore.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "common/chunk_format.h"
#include "common/strings.h"

namespace cairn {
namespace {

Status PwriteAll(int fd, const char* data, size_t n, uint64_t offset,
                 const std::string& path) {
  const size_t total = n;
  while (n > 0) {
    ssize_t w = ::pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "write", path);
    }
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  // Start writeback now, so the final fsync finds little left to flush and
  // dirty pages do not pile up (advisory; errors surface at fsync).
  ::sync_file_range(fd, static_cast<off_t>(offset - total),
                    static_cast<off_t>(total), SYNC_FILE_RANGE_WRITE);
  return absl::OkStatus();
}

// Reads up to `n` bytes at `offset` into `buf`; `*got` is how many were read
// (fewer only at end of file).
Status PreadAll(int fd, char* buf, size_t n, uint64_t offset,
                const std::string& path, size_t* got) {
  *got = 0;
  while (*got < n) {
    ssize_t r =
        ::pread(fd, buf + *got, n - *got, static_cast<off_t>(offset + *got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "read", path);
    }
    if (r == 0) break;
    *got += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

// Does the target hold chunk `i` already? Reads its region into `*buf`.
StatusOr<bool> RegionMatches(int fd, const Manifest& m, uint64_t i,
                             const DataKey* id_key, const std::string& path,
                             std::string* buf) {
  const uint32_t len = m.ChunkLength(i);
  buf->resize(len);
  size_t got = 0;
  CAIRN_RETURN_IF_ERROR(
      PreadAll(fd, buf->data(), len, i * m.chunk_size, path, &got));
  if (got != len) return false;
  if (m.chunks[i].IsZero()) return IsAllZero(*buf);
  return ComputeChunkId(*buf, id_key) == m.chunks[i];
}

// Runs fn(i) for every chunk index on `threads` workers; the first error
// stops the others and is returned.
Status ForEachChunk(uint64_t count, int threads,
                    const std::function<Status(uint64_t, std::string*)>& fn) {
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;
  auto worker = [&]() {
    std::string buf;
    while (!failed) {
      uint64_t i = next.fetch_add(1);
      if (i >= count) return;
      Status s = fn(i, &buf);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = s;
        failed = true;
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return first_error;
}

// Makes the region of zero chunk `i` read as zeros: a hole in a regular
// file where the file system can punch one, written zeros otherwise.
Status WriteZeros(int fd, const Manifest& m, uint64_t i, bool block_device,
                  const std::string& path, std::string* buf) {
  const uint32_t len = m.ChunkLength(i);
  if (!block_device &&
      ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(i * m.chunk_size), len) == 0) {
    return absl::OkStatus();
  }
  buf->assign(len, '\0');
  return PwriteAll(fd, buf->data(), len, i * m.chunk_size, path);
}

Status Verify(int fd, const Manifest& m, const DataKey* id_key, int threads,
              const std::string& path, ProgressCounter* progress) {
  // Drop the cached pages so the check reads what the device holds, not
  // what we just wrote into memory (advisory; fsync came first, so the
  // pages are clean and can be dropped).
  ::posix_fadvise(fd, 0, static_cast<off_t>(m.image_size), POSIX_FADV_DONTNEED);
  return ForEachChunk(
      m.chunks.size(), threads, [&](uint64_t i, std::string* buf) -> Status {
        CAIRN_ASSIGN_OR_RETURN(bool ok,
                               RegionMatches(fd, m, i, id_key, path, buf));
        if (!ok) {
          return absl::DataLossError(StrCat(
              "verification failed: ", path, " at offset ", i * m.chunk_size,
              " (chunk ", i, ", ", m.ChunkLength(i),
              " bytes) does not hold the image's data after the restore"));
        }
        if (progress) progress->Add(m.ChunkLength(i));
        return absl::OkStatus();
      });
}

}  // namespace

StatusOr<RestoreStats> RestoreImage(ImageReader* reader,
                                    const std::string& target_path,
                                    const RestoreOptions& options) {
  auto start = std::chrono::steady_clock::now();
  const Manifest& m = reader->manifest();
  const bool check_ids = options.resume || options.verify;
  if (check_ids && m.encrypted() && options.key == nullptr) {
    return absl::FailedPreconditionError(
        "resuming or verifying a restore of an encrypted backup needs its "
        "data key");
  }
  const DataKey* id_key = m.encrypted() ? options.key : nullptr;
  const int flags = (check_ids ? O_RDWR : O_WRONLY) | O_CREAT | O_CLOEXEC;
  int fd = ::open(target_path.c_str(), flags, 0600);
  if (fd < 0) return ErrnoToStatus(errno, "open restore target", target_path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "stat", target_path);
  }
  const bool block_device = S_ISBLK(st.st_mode);
  if (block_device) {
    off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0 || static_cast<uint64_t>(end) < m.image_size) {
      ::close(fd);
      return absl::FailedPreconditionError(StrCat(target_path, " holds ", end,
                                                  " bytes; the image needs ",
                                                  m.image_size));
    }
  } else if (options.resume) {
    // Keep what is there; only fix the size.
    if (static_cast<uint64_t>(st.st_size) != m.image_size &&
        ::ftruncate(fd, static_cast<off_t>(m.image_size)) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoToStatus(err, "truncate", target_path);
    }
  } else if (::ftruncate(fd, 0) != 0 ||
             ::ftruncate(fd, static_cast<off_t>(m.image_size)) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "truncate", target_path);
  }

  // Two workers per core: each alternates between decoding (CPU) and
  // waiting for its chunk read or write (I/O).
  const int threads =
      options.threads > 0
          ? options.threads
          : static_cast<int>(2 *
                             std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<uint64_t> written{0}, zero{0}, bytes{0}, skipped{0},
      skipped_bytes{0};
  Status status = ForEachChunk(
      m.chunks.size(), threads, [&](uint64_t i, std::string* data) -> Status {
        const uint32_t len = m.ChunkLength(i);
        const bool is_zero = m.chunks[i].IsZero();
        if (options.resume) {
          CAIRN_ASSIGN_OR_RETURN(
              bool in_place,
              RegionMatches(fd, m, i, id_key, target_path, data));
          if (in_place) {
            ++skipped;
            skipped_bytes += len;
            if (options.progress) options.progress->Add(len);
            return absl::OkStatus();
          }
          if (is_zero) {
            CAIRN_RETURN_IF_ERROR(
                WriteZeros(fd, m, i, block_device, target_path, data));
            ++written;
            bytes += len;
            if (options.progress) options.progress->Add(len);
            return absl::OkStatus();
          }
        } else if (is_zero && !block_device) {
          ++zero;  // a hole in the freshly truncated file
          if (options.progress) options.progress->Add(len);
          return absl::OkStatus();
        }
        CAIRN_RETURN_IF_ERROR(reader->ReadChunk(i, data));
        CAIRN_RETURN_IF_ERROR(PwriteAll(fd, data->data(), data->size(),
                                        i * m.chunk_size, target_path));
        ++written;
        bytes += len;
        if (options.progress) options.progress->Add(len);
        return absl::OkStatus();
      });
  if (status.ok() && ::fsync(fd) != 0) {
    status = ErrnoToStatus(errno, "fsync", target_path);
  }
  if (status.ok() && options.verify) {
    if (options.before_verify) status = options.before_verify();
    if (status.ok()) {
      status = Verify(fd, m, id_key, threads, target_path, options.progress);
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  RestoreStats stats;
  stats.image_size = m.image_size;
  stats.chunks_written = written;
  stats.chunks_zero = zero;
  stats.chunks_skipped = skipped;
  stats.bytes_written = bytes;
  stats.bytes_skipped = skipped_bytes;
  stats.verified = options.verify;
  stats.bytes_verified = options.verify ? m.image_size : 0;
  stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return stats;
}

}  // namespace cairn
