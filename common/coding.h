// Little-endian fixed-width and LEB128 varint encoding, used by every Cairn
// binary format (docs/formats/). All multi-byte integers on disk and on the
// wire outside protobuf are little-endian.
//
// Thread safety: all functions are pure; Decoder is not thread-safe.
#ifndef CAIRN_COMMON_CODING_H_
#define CAIRN_COMMON_CODING_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace cairn {

inline void EncodeFixed16(char* dst, uint16_t v) {
  dst[0] = static_cast<char>(v);
  dst[1] = static_cast<char>(v >> 8);
}
inline void EncodeFixed32(char* dst, uint32_t v) {
  for (int i = 0; i < 4; ++i) dst[i] = static_cast<char>(v >> (8 * i));
}
inline void EncodeFixed64(char* dst, uint64_t v) {
  for (int i = 0; i < 8; ++i) dst[i] = static_cast<char>(v >> (8 * i));
}
inline uint16_t DecodeFixed16(const char* p) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}
inline uint32_t DecodeFixed32(const char* p) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | u[i];
  return v;
}
inline uint64_t DecodeFixed64(const char* p) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | u[i];
  return v;
}

void PutFixed16(std::string* dst, uint16_t v);
void PutFixed32(std::string* dst, uint32_t v);
void PutFixed64(std::string* dst, uint64_t v);
// Unsigned LEB128: 7 bits per byte, low group first, high bit = continuation.
void PutVarint64(std::string* dst, uint64_t v);
// A varint length followed by that many bytes.
void PutLengthPrefixed(std::string* dst, std::string_view value);

// Reads the formats above from a byte range. Every getter returns false (and
// leaves the decoder failed) if the input is too short or malformed, so a
// parser can read a whole record and check ok() once.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}

  bool GetFixed8(uint8_t* v);
  bool GetFixed16(uint16_t* v);
  bool GetFixed32(uint32_t* v);
  bool GetFixed64(uint64_t* v);
  // At most 10 bytes; rejects overlong encodings that overflow 64 bits.
  bool GetVarint64(uint64_t* v);
  // Fails if the prefix exceeds `max_len` or the remaining input.
  bool GetLengthPrefixed(std::string_view* v, uint64_t max_len);
  bool GetBytes(size_t n, std::string_view* v);

  bool ok() const { return ok_; }
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }

 private:
  bool Fail() {
    ok_ = false;
    return false;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Lower-case hexadecimal of `bytes`.
std::string HexEncode(std::string_view bytes);
// Inverse of HexEncode; accepts either case. Returns false on odd length or a
// non-hex character.
bool HexDecode(std::string_view hex, std::string* out);

}  // namespace cairn

#endif  // CAIRN_COMMON_CODING_H_
