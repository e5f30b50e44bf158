#include "agent/image_restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

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

}  // namespace

StatusOr<RestoreStats> RestoreImage(ImageReader* reader,
                                    const std::string& target_path,
                                    const RestoreOptions& options) {
  auto start = std::chrono::steady_clock::now();
  const Manifest& m = reader->manifest();
  int fd = ::open(target_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
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
  } else if (::ftruncate(fd, 0) != 0 ||
             ::ftruncate(fd, static_cast<off_t>(m.image_size)) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "truncate", target_path);
  }

  const uint64_t count = m.chunks.size();
  // Two workers per core: each alternates between decoding (CPU) and
  // waiting for its chunk read or write (I/O).
  int threads =
      options.threads > 0
          ? options.threads
          : static_cast<int>(2 *
                             std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;
  std::atomic<uint64_t> written{0}, zero{0}, bytes{0};
  auto worker = [&]() {
    std::string data;
    while (!failed) {
      uint64_t i = next.fetch_add(1);
      if (i >= count) return;
      uint32_t len = m.ChunkLength(i);
      if (m.chunks[i].IsZero() && !block_device) {
        ++zero;
        if (options.progress) options.progress->Add(len);
        continue;
      }
      Status s = reader->ReadChunk(i, &data);
      if (s.ok())
        s = PwriteAll(fd, data.data(), data.size(), i * m.chunk_size,
                      target_path);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = s;
        failed = true;
        return;
      }
      ++written;
      bytes += len;
      if (options.progress) options.progress->Add(len);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (first_error.ok() && ::fsync(fd) != 0) {
    first_error = ErrnoToStatus(errno, "fsync", target_path);
  }
  ::close(fd);
  if (!first_error.ok()) return first_error;
  RestoreStats stats;
  stats.image_size = m.image_size;
  stats.chunks_written = written;
  stats.chunks_zero = zero;
  stats.bytes_written = bytes;
  stats.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return stats;
}

}  // namespace cairn
