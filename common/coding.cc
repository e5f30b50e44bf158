#include "common/coding.h"

namespace cairn {

void PutFixed16(std::string* dst, uint16_t v) {
  char buf[2];
  EncodeFixed16(buf, v);
  dst->append(buf, 2);
}
void PutFixed32(std::string* dst, uint32_t v) {
  char buf[4];
  EncodeFixed32(buf, v);
  dst->append(buf, 4);
}
void PutFixed64(std::string* dst, uint64_t v) {
  char buf[8];
  EncodeFixed64(buf, v);
  dst->append(buf, 8);
}
void PutVarint64(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}
void PutLengthPrefixed(std::string* dst, std::string_view value) {
  PutVarint64(dst, value.size());
  dst->append(value);
}

bool Decoder::GetFixed8(uint8_t* v) {
  if (!ok_ || remaining() < 1) return Fail();
  *v = static_cast<uint8_t>(in_[pos_++]);
  return true;
}
bool Decoder::GetFixed16(uint16_t* v) {
  if (!ok_ || remaining() < 2) return Fail();
  *v = DecodeFixed16(in_.data() + pos_);
  pos_ += 2;
  return true;
}
bool Decoder::GetFixed32(uint32_t* v) {
  if (!ok_ || remaining() < 4) return Fail();
  *v = DecodeFixed32(in_.data() + pos_);
  pos_ += 4;
  return true;
}
bool Decoder::GetFixed64(uint64_t* v) {
  if (!ok_ || remaining() < 8) return Fail();
  *v = DecodeFixed64(in_.data() + pos_);
  pos_ += 8;
  return true;
}
bool Decoder::GetVarint64(uint64_t* v) {
  if (!ok_) return false;
  uint64_t result = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (pos_ >= in_.size()) return Fail();
    uint64_t byte = static_cast<uint8_t>(in_[pos_++]);
    if (shift == 63 && byte > 1) return Fail();  // would overflow 64 bits
    result |= (byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return Fail();
}
bool Decoder::GetLengthPrefixed(std::string_view* v, uint64_t max_len) {
  uint64_t len = 0;
  if (!GetVarint64(&len)) return false;
  if (len > max_len) return Fail();
  return GetBytes(static_cast<size_t>(len), v);
}
bool Decoder::GetBytes(size_t n, std::string_view* v) {
  if (!ok_ || remaining() < n) return Fail();
  *v = in_.substr(pos_, n);
  pos_ += n;
  return true;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.resize(bytes.size() * 2);
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto b = static_cast<uint8_t>(bytes[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 0xf];
  }
  return out;
}

static int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool HexDecode(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  std::string result;
  result.resize(hex.size() / 2);
  for (size_t i = 0; i < result.size(); ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    result[i] = static_cast<char>((hi << 4) | lo);
  }
  *out = std::move(result);
  return true;
}

}  // namespace cairn
