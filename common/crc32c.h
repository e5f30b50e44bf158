// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), as used by iSCSI,
// ext4 and LevelDB. Standard check value: Value("123456789") == 0xE3069283.
//
// Hand-written because Debian 12 packages no CRC32C library (Google's crc32c
// is not in bookworm, and RocksDB does not install its copy's header). Uses
// the SSE4.2 CRC32 instruction when the CPU has it, a slicing-by-8 table
// otherwise. Thread-safe.
#ifndef CAIRN_COMMON_CRC32C_H_
#define CAIRN_COMMON_CRC32C_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cairn::crc32c {

// Returns the CRC32C of concat(A, data) where init_crc is the CRC of A.
uint32_t Extend(uint32_t init_crc, const char* data, size_t n);

inline uint32_t Value(const char* data, size_t n) { return Extend(0, data, n); }
inline uint32_t Value(std::string_view s) {
  return Extend(0, s.data(), s.size());
}

}  // namespace cairn::crc32c

#endif  // CAIRN_COMMON_CRC32C_H_
