// cairn_store_read_bench: reads one backup straight from a chunk store,
// the baseline of tests/bench/nbd_bench.sh (the NBD export's throughput is
// reported as a ratio to this).
//
//   cairn_store_read_bench STORE BACKUP [KEY_FILE|-] [THREADS]
//
// Decodes every data chunk once through ImageReader::ReadChunk (read, CRC,
// decrypt, decompress), THREADS workers taking chunks in turn, and discards
// the bytes. Zero chunks are skipped, as an NBD client that reads extents
// skips holes. Prints one JSON line: bytes, data_bytes, seconds, MiB/s.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/data_key.h"
#include "common/image_reader.h"
#include "media_agent/read_only_store.h"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: %s STORE BACKUP [KEY_FILE|-] [THREADS]\n",
                 argv[0]);
    return 2;
  }
  std::unique_ptr<cairn::DataKey> key;
  if (argc >= 4 && std::string(argv[3]) != "-") {
    auto k = cairn::DataKey::LoadFromFile(argv[3]);
    if (!k.ok()) {
      std::fprintf(stderr, "error: %s\n",
                   std::string(k.status().message()).c_str());
      return 5;
    }
    key = std::make_unique<cairn::DataKey>(*std::move(k));
  }
  int threads = argc >= 5 ? std::atoi(argv[4]) : 2;
  if (threads < 1) threads = 1;
  auto store = cairn::ReadOnlyStore::Open(argv[1], cairn::Env::Default());
  if (!store.ok()) {
    std::fprintf(stderr, "error: %s\n",
                 std::string(store.status().message()).c_str());
    return 3;
  }
  auto reader = cairn::ImageReader::Open(store->get(), argv[2], key.get(), 1);
  if (!reader.ok()) {
    std::fprintf(stderr, "error: %s\n",
                 std::string(reader.status().message()).c_str());
    return 3;
  }
  const cairn::Manifest& m = (*reader)->manifest();
  std::atomic<uint64_t> next{0}, data_bytes{0};
  std::atomic<bool> failed{false};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      std::string buf;
      for (uint64_t i = next++; i < m.chunks.size(); i = next++) {
        if (m.chunks[i].IsZero()) continue;
        cairn::Status s = (*reader)->ReadChunk(i, &buf);
        if (!s.ok()) {
          std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
          failed = true;
          return;
        }
        data_bytes += buf.size();
      }
    });
  }
  for (auto& w : workers) w.join();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (failed) return 4;
  std::printf(
      "{\"bytes\": %llu, \"data_bytes\": %llu, \"threads\": %d, "
      "\"seconds\": %.3f, \"mib_per_s\": %.1f}\n",
      static_cast<unsigned long long>(m.image_size),
      static_cast<unsigned long long>(data_bytes.load()), threads, seconds,
      m.image_size / 1048576.0 / seconds);
  return 0;
}
