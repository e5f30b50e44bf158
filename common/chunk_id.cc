#include "common/chunk_id.h"

#include "common/coding.h"
#include "common/strings.h"

namespace cairn {

bool ChunkId::IsZero() const {
  for (uint8_t b : bytes) {
    if (b != 0) return false;
  }
  return true;
}

StatusOr<ChunkId> ChunkId::FromHex(std::string_view hex) {
  std::string raw;
  if (hex.size() != 2 * kSize || !HexDecode(hex, &raw)) {
    return absl::InvalidArgumentError(
        StrCat("not a chunk id (64 hex digits): '", hex.substr(0, 80), "'"));
  }
  return FromBytes(reinterpret_cast<const uint8_t*>(raw.data()));
}

std::string ChunkId::ToHex() const { return HexEncode(AsStringView()); }

bool IsAllZero(std::string_view data) {
  static const char kZeros[64] = {};
  const char* p = data.data();
  size_t n = data.size();
  while (n >= 64) {
    if (std::memcmp(p, kZeros, 64) != 0) return false;
    p += 64;
    n -= 64;
  }
  return std::memcmp(p, kZeros, n) == 0;
}

}  // namespace cairn
