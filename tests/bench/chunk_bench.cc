// cairn_chunk_bench: Google Benchmark micro-benchmarks of the per-chunk work
// of a backup and a restore, so that the whole-process figures of
// tests/bench/ingest_bench.sh can be attributed (hashing vs compression vs
// encryption vs CRC vs writing). See docs/performance.md for figures.
//
// Every benchmark works on 4 MiB chunks (Cairn's default) and reports
// bytes/s of plaintext (state.SetBytesProcessed), so figures compare
// directly with `openssl speed -bytes 4194304 -evp sha256`.
//
// Inputs:
//   text   synthetic text-like chunks (source code and log lines from a
//          fixed vocabulary and a fixed PRNG): zstd -1 shrinks them 3-4x,
//          like /usr/share content. Always available, identical everywhere.
//   image  the non-zero 4 MiB chunks of a real disk image, when the
//          environment variable CAIRN_BENCH_IMAGE names one (for instance
//          the image that tests/bench/make-usr-image.sh builds); benchmarks
//          cycle over them, so the figure is the image's own mix of text,
//          binaries and already-compressed data. Skipped when unset.
//
// Run: build-release/tests/bench/cairn_chunk_bench [--benchmark_filter=...]
// Not a test: nothing here asserts a speed.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/chunk_format.h"
#include "common/chunk_id.h"
#include "common/compression.h"
#include "common/crc32c.h"
#include "common/crypto.h"
#include "common/data_key.h"
#include "common/env.h"
#include "media_agent/chunk_store.h"

namespace cairn {
namespace {

constexpr size_t kChunk = 4u << 20;

// ---------------------------------------------------------------------------
// Inputs

std::string MakeTextChunk(uint64_t seed) {
  static const char* kWords[] = {
      "the",      "static",   "const",   "return",  "if",       "else",
      "for",      "while",    "int",     "void",    "char",     "struct",
      "include",  "define",   "buffer",  "length",  "offset",   "error",
      "status",   "config",   "value",   "string",  "kernel",   "module",
      "device",   "driver",   "network", "package", "version",  "license",
      "function", "variable", "pointer", "memory",  "thread",   "mutex",
      "file",     "system",   "debian",  "python",  "library",  "object",
      "section",  "symbol",   "default", "option",  "argument", "install",
      "0x7f3a",   "1024",     "42",      "usr",     "lib",      "share",
      "doc",      "man",      "bin",     "x86_64",  "linux",    "gnu"};
  constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);
  std::mt19937_64 rng(seed);
  // Zipf-like choice: small indices far more often than large ones.
  auto word = [&]() -> const char* {
    uint64_t r = rng();
    size_t a = r % kNumWords, b = (r >> 20) % kNumWords;
    return kWords[std::min(a, b)];
  };
  std::string out;
  out.reserve(kChunk + 256);
  uint64_t line = 0;
  while (out.size() < kChunk) {
    switch (rng() % 4) {
      case 0: {  // a log line with a timestamp and numbers
        char buf[96];
        std::snprintf(
            buf, sizeof(buf), "2024-%02d-%02dT%02d:%02d:%02d.%06u ",
            static_cast<int>(1 + rng() % 12), static_cast<int>(1 + rng() % 28),
            static_cast<int>(rng() % 24), static_cast<int>(rng() % 60),
            static_cast<int>(rng() % 60),
            static_cast<unsigned>(rng() % 1000000));
        out += buf;
        break;
      }
      case 1:
        out.append(static_cast<size_t>(2 * (rng() % 4)), ' ');
        break;
      default:
        break;
    }
    int n = 3 + static_cast<int>(rng() % 10);
    for (int i = 0; i < n; ++i) {
      out += word();
      out += (rng() % 7 == 0) ? "_" : " ";
    }
    out += (++line % 3 == 0) ? ";\n" : "\n";
  }
  out.resize(kChunk);
  return out;
}

const std::vector<std::string>& TextChunks() {
  static const auto* chunks = [] {
    auto* v = new std::vector<std::string>;
    for (uint64_t i = 0; i < 4; ++i) v->push_back(MakeTextChunk(1000 + i));
    return v;
  }();
  return *chunks;
}

// Up to 48 non-zero chunks spread evenly over CAIRN_BENCH_IMAGE.
const std::vector<std::string>& ImageChunks() {
  static const auto* chunks = [] {
    auto* v = new std::vector<std::string>;
    const char* path = std::getenv("CAIRN_BENCH_IMAGE");
    if (path == nullptr || *path == '\0') return v;
    auto file = Env::Default()->NewRandomAccessFile(path);
    if (!file.ok()) return v;
    auto size = (*file)->Size();
    if (!size.ok() || *size < kChunk) return v;
    uint64_t count = *size / kChunk;
    std::vector<uint64_t> nonzero;
    std::string buf(kChunk, '\0');
    for (uint64_t i = 0; i < count; ++i) {
      std::string_view got;
      if ((*file)->Read(i * kChunk, kChunk, buf.data(), &got).ok() &&
          got.size() == kChunk && !IsAllZero(got)) {
        nonzero.push_back(i);
      }
    }
    const size_t want = std::min<size_t>(48, nonzero.size());
    for (size_t k = 0; k < want; ++k) {
      uint64_t i = nonzero[k * nonzero.size() / want];
      std::string_view got;
      if ((*file)->Read(i * kChunk, kChunk, buf.data(), &got).ok()) {
        v->push_back(std::string(got));
      }
    }
    return v;
  }();
  return *chunks;
}

enum Input { kText = 0, kImage = 1 };

const std::vector<std::string>* Inputs(benchmark::State& state) {
  const auto& v = state.range(0) == kImage ? ImageChunks() : TextChunks();
  if (v.empty()) {
    state.SkipWithError("CAIRN_BENCH_IMAGE is not set (or unreadable)");
    return nullptr;
  }
  state.SetLabel(state.range(0) == kImage ? "image" : "text");
  return &v;
}

const DataKey& Key() {
  static const DataKey* key = new DataKey(DataKey::Generate());
  return *key;
}

void Finish(benchmark::State& state, size_t bytes_per_iteration) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(bytes_per_iteration));
}

// ---------------------------------------------------------------------------
// Primitives

void BM_Sha256(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  size_t k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(crypto::Sha256((*in)[k++ % in->size()]));
  }
  Finish(state, kChunk);
}

void BM_HmacSha256(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  size_t k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        crypto::HmacSha256(Key().id_key(), (*in)[k++ % in->size()]));
  }
  Finish(state, kChunk);
}

void BM_Crc32c(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  size_t k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(crc32c::Value((*in)[k++ % in->size()]));
  }
  Finish(state, kChunk);
}

void BM_IsAllZero(benchmark::State& state) {
  // The worst case of the zero-chunk test: a chunk that is zero throughout.
  std::string zeros(kChunk, '\0');
  for (auto _ : state) benchmark::DoNotOptimize(IsAllZero(zeros));
  Finish(state, kChunk);
}

void BM_ZstdCompress(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  const int level = static_cast<int>(state.range(1));
  std::string out;
  size_t k = 0, plain = 0, packed = 0;
  for (auto _ : state) {
    out.clear();
    const std::string& chunk = (*in)[k++ % in->size()];
    if (!ZstdCompress(chunk, level, &out).ok())
      state.SkipWithError("compress failed");
    plain += chunk.size();
    packed += out.size();
  }
  Finish(state, kChunk);
  state.counters["ratio"] = packed ? static_cast<double>(plain) / packed : 0;
}

void BM_ZstdDecompress(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  std::vector<std::string> frames;
  for (const auto& c : *in) {
    std::string f;
    if (!ZstdCompress(c, 1, &f).ok())
      return state.SkipWithError("compress failed");
    frames.push_back(std::move(f));
  }
  std::string out;
  size_t k = 0;
  for (auto _ : state) {
    if (!ZstdDecompress(frames[k++ % frames.size()], kChunk, &out).ok()) {
      state.SkipWithError("decompress failed");
    }
  }
  Finish(state, kChunk);
}

void BM_AesGcmEncrypt(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  std::string nonce = crypto::RandomString(crypto::kGcmNonceSize);
  std::string out;
  uint8_t tag[crypto::kGcmTagSize];
  size_t k = 0;
  for (auto _ : state) {
    out.clear();
    if (!crypto::AesGcmEncrypt(Key().encryption_key(), nonce, "aad",
                               (*in)[k++ % in->size()], &out, tag)
             .ok()) {
      state.SkipWithError("encrypt failed");
    }
  }
  Finish(state, kChunk);
}

void BM_AesGcmDecrypt(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  std::string nonce = crypto::RandomString(crypto::kGcmNonceSize);
  std::vector<std::string> cts;
  std::vector<std::array<uint8_t, crypto::kGcmTagSize>> tags;
  for (const auto& c : *in) {
    std::string ct;
    std::array<uint8_t, crypto::kGcmTagSize> tag;
    if (!crypto::AesGcmEncrypt(Key().encryption_key(), nonce, "aad", c, &ct,
                               tag.data())
             .ok()) {
      return state.SkipWithError("encrypt failed");
    }
    cts.push_back(std::move(ct));
    tags.push_back(tag);
  }
  std::string out;
  size_t k = 0;
  for (auto _ : state) {
    size_t i = k++ % cts.size();
    if (!crypto::AesGcmDecrypt(Key().encryption_key(), nonce, "aad", cts[i],
                               tags[i].data(), &out)
             .ok()) {
      state.SkipWithError("decrypt failed");
    }
  }
  Finish(state, kChunk);
}

// ---------------------------------------------------------------------------
// Cairn's per-chunk pipeline steps (what a backup worker does per new chunk:
// ComputeChunkId then EncodeChunk; a restore worker: DecodeChunk).

void BM_ComputeChunkId(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  const DataKey* key = state.range(1) ? &Key() : nullptr;
  size_t k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ComputeChunkId((*in)[k++ % in->size()], key));
  }
  Finish(state, kChunk);
}

void BM_EncodeChunk(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  const DataKey* key = state.range(1) ? &Key() : nullptr;
  std::vector<ChunkId> ids;
  for (const auto& c : *in) ids.push_back(ComputeChunkId(c, key));
  ChunkEncodeOptions opts{1, key};
  std::string stored;
  size_t k = 0;
  for (auto _ : state) {
    size_t i = k++ % in->size();
    if (!EncodeChunk(ids[i], (*in)[i], opts, &stored).ok()) {
      state.SkipWithError("encode failed");
    }
  }
  Finish(state, kChunk);
}

// Hash + encode: the whole CPU cost of one new chunk in a backup.
void BM_IngestChunk(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  const DataKey* key = state.range(1) ? &Key() : nullptr;
  ChunkEncodeOptions opts{1, key};
  std::string stored;
  size_t k = 0;
  for (auto _ : state) {
    const std::string& c = (*in)[k++ % in->size()];
    ChunkId id = ComputeChunkId(c, key);
    if (!EncodeChunk(id, c, opts, &stored).ok())
      state.SkipWithError("encode failed");
  }
  Finish(state, kChunk);
}

void BM_DecodeChunk(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  const DataKey* key = state.range(1) ? &Key() : nullptr;
  std::vector<ChunkId> ids;
  std::vector<std::string> stored;
  for (const auto& c : *in) {
    ids.push_back(ComputeChunkId(c, key));
    std::string s;
    if (!EncodeChunk(ids.back(), c, ChunkEncodeOptions{1, key}, &s).ok()) {
      return state.SkipWithError("encode failed");
    }
    stored.push_back(std::move(s));
  }
  std::string plain;
  size_t k = 0;
  for (auto _ : state) {
    size_t i = k++ % stored.size();
    if (!DecodeChunk(ids[i], stored[i], key, &plain).ok()) {
      state.SkipWithError("decode failed");
    }
  }
  Finish(state, kChunk);
}

// ---------------------------------------------------------------------------
// Storage: ChunkStore::Put (temp file, write, fsync, rename) of a stored
// chunk, into a scratch directory under $CAIRN_BENCH_DIR (default /var/tmp).
// Bytes/s counts plaintext, as above, so the figure is the store's share of
// the ingest rate. Each iteration stores a different chunk (fresh id).

void BM_ChunkStorePut(benchmark::State& state) {
  const auto* in = Inputs(state);
  if (in == nullptr) return;
  const char* base_env = std::getenv("CAIRN_BENCH_DIR");
  std::string base = base_env && *base_env ? base_env : "/var/tmp";
  std::string root = base + "/cairn_chunk_bench." + std::to_string(getpid());
  std::filesystem::create_directories(root + "/chunks");
  std::filesystem::create_directories(root + "/tmp");
  std::vector<std::string> stored;
  for (const auto& c : *in) {
    std::string s;
    if (!EncodeChunk(ComputeChunkId(c, nullptr), c, ChunkEncodeOptions{}, &s)
             .ok()) {
      return state.SkipWithError("encode failed");
    }
    stored.push_back(std::move(s));
  }
  ChunkStore store(Env::Default(), root);
  uint64_t n = 0;
  size_t stored_bytes = 0;
  for (auto _ : state) {
    const std::string& s = stored[n % stored.size()];
    ++n;
    // A fresh id per iteration: the store never sees the same chunk twice.
    std::string seed = std::to_string(n) + "/" + std::to_string(getpid());
    ChunkId id = ChunkId::FromBytes(crypto::Sha256(seed).data());
    if (!store.Put(id, s).ok()) state.SkipWithError("put failed");
    stored_bytes += s.size();
  }
  if (!store.SyncPending().ok()) state.SkipWithError("sync failed");
  Finish(state, kChunk);
  state.counters["stored_MB_per_chunk"] =
      n ? static_cast<double>(stored_bytes) / n / 1e6 : 0;
  std::filesystem::remove_all(root);
}

// ---------------------------------------------------------------------------

void TextAndImage(benchmark::internal::Benchmark* b) {
  b->ArgNames({"input"})->Arg(kText)->Arg(kImage);
}
void TextAndImageByKey(benchmark::internal::Benchmark* b) {
  b->ArgNames({"input", "key"});
  for (int input : {kText, kImage}) {
    for (int key : {0, 1}) b->Args({input, key});
  }
}

BENCHMARK(BM_Sha256)->Apply(TextAndImage)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HmacSha256)->Apply(TextAndImage)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Crc32c)->Apply(TextAndImage)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IsAllZero)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ZstdCompress)
    ->ArgNames({"input", "level"})
    ->Args({kText, 1})
    ->Args({kImage, 1})
    ->Args({kImage, 3})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ZstdDecompress)
    ->Apply(TextAndImage)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AesGcmEncrypt)->Apply(TextAndImage)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AesGcmDecrypt)->Apply(TextAndImage)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ComputeChunkId)
    ->Apply(TextAndImageByKey)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeChunk)
    ->Apply(TextAndImageByKey)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IngestChunk)
    ->Apply(TextAndImageByKey)
    ->Unit(benchmark::kMillisecond);
// Both cores: what the 2-worker pipeline can reach when CPU-bound.
BENCHMARK(BM_IngestChunk)
    ->Apply(TextAndImageByKey)
    ->Threads(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeChunk)
    ->Apply(TextAndImageByKey)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeChunk)
    ->Apply(TextAndImageByKey)
    ->Threads(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ChunkStorePut)
    ->Apply(TextAndImage)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cairn

BENCHMARK_MAIN();
