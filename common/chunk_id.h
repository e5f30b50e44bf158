// ChunkId: the 32-byte content address of a chunk (docs/formats/chunk.md).
//
// SHA-256 of the plaintext when the storage policy does not encrypt, or
// HMAC-SHA256 under the policy's id key when it does (so deduplication works
// only within one key and ids reveal nothing about content to the store).
// The all-zero id is reserved: in a Manifest it marks an all-zero chunk that
// is never stored.
#ifndef CAIRN_COMMON_CHUNK_ID_H_
#define CAIRN_COMMON_CHUNK_ID_H_

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn {

struct ChunkId {
  static constexpr size_t kSize = 32;
  std::array<uint8_t, kSize> bytes{};

  // The reserved all-zero id (a zero chunk in a manifest).
  static ChunkId Zero() { return ChunkId{}; }
  bool IsZero() const;

  static ChunkId FromBytes(const uint8_t* p) {
    ChunkId id;
    std::memcpy(id.bytes.data(), p, kSize);
    return id;
  }
  // InvalidArgument unless `hex` is exactly 64 hex digits.
  static StatusOr<ChunkId> FromHex(std::string_view hex);
  std::string ToHex() const;
  std::string_view AsStringView() const {
    return {reinterpret_cast<const char*>(bytes.data()), kSize};
  }

  auto operator<=>(const ChunkId&) const = default;
  bool operator==(const ChunkId&) const = default;

  template <typename H>
  friend H AbslHashValue(H h, const ChunkId& id) {
    uint64_t prefix;
    std::memcpy(&prefix, id.bytes.data(), sizeof(prefix));  // already uniform
    return H::combine(std::move(h), prefix);
  }
};

struct ChunkIdHash {
  size_t operator()(const ChunkId& id) const {
    size_t v;
    std::memcpy(&v, id.bytes.data(), sizeof(v));
    return v;
  }
};

// True if every byte of `data` is zero. Fast: compares 64-byte blocks.
bool IsAllZero(std::string_view data);

}  // namespace cairn

#endif  // CAIRN_COMMON_CHUNK_ID_H_
