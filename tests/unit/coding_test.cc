#include "common/coding.h"

#include <gtest/gtest.h>

#include "common/crc32c.h"

namespace cairn {
namespace {

TEST(CodingTest, FixedIsLittleEndian) {
  std::string s;
  PutFixed32(&s, 0x04030201);
  PutFixed64(&s, 0x0807060504030201ull);
  ASSERT_EQ(s.size(), 12u);
  EXPECT_EQ(s[0], 1);
  EXPECT_EQ(s[3], 4);
  EXPECT_EQ(s[4], 1);
  EXPECT_EQ(s[11], 8);
  EXPECT_EQ(DecodeFixed32(s.data()), 0x04030201u);
  EXPECT_EQ(DecodeFixed64(s.data() + 4), 0x0807060504030201ull);
}

TEST(CodingTest, VarintRoundTripsAndRejectsDamage) {
  std::string s;
  const uint64_t values[] = {0, 1, 127, 128, 300, 1ull << 32, UINT64_MAX};
  for (uint64_t v : values) PutVarint64(&s, v);
  EXPECT_EQ(s[0], 0);
  Decoder d(s);
  for (uint64_t v : values) {
    uint64_t got = 0;
    ASSERT_TRUE(d.GetVarint64(&got));
    EXPECT_EQ(got, v);
  }
  EXPECT_EQ(d.remaining(), 0u);

  // Truncated varint.
  std::string truncated = "\x80\x80";
  Decoder t(truncated);
  uint64_t v;
  EXPECT_FALSE(t.GetVarint64(&v));
  EXPECT_FALSE(t.ok());
  // Eleven continuation bytes overflow 64 bits.
  std::string overlong(10, '\xff');
  overlong.push_back('\x01');
  Decoder o(overlong);
  EXPECT_FALSE(o.GetVarint64(&v));
}

TEST(CodingTest, LengthPrefixedEnforcesLimit) {
  std::string s;
  PutLengthPrefixed(&s, "hello");
  Decoder d(s);
  std::string_view out;
  EXPECT_FALSE(d.GetLengthPrefixed(&out, 4));
  Decoder d2(s);
  ASSERT_TRUE(d2.GetLengthPrefixed(&out, 5));
  EXPECT_EQ(out, "hello");
  // A length larger than the input fails instead of over-reading.
  std::string lie;
  PutVarint64(&lie, 1000);
  lie += "abc";
  Decoder d3(lie);
  EXPECT_FALSE(d3.GetLengthPrefixed(&out, 1 << 20));
}

TEST(CodingTest, Hex) {
  EXPECT_EQ(HexEncode(std::string("\x00\xff\x10", 3)), "00ff10");
  std::string raw;
  ASSERT_TRUE(HexDecode("00FF10", &raw));
  EXPECT_EQ(raw, std::string("\x00\xff\x10", 3));
  EXPECT_FALSE(HexDecode("abc", &raw));
  EXPECT_FALSE(HexDecode("zz", &raw));
}

TEST(Crc32cTest, StandardCheckValues) {
  EXPECT_EQ(crc32c::Value("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c::Value(""), 0u);
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c::Value(zeros), 0x8A9136AAu);  // RFC 3720 B.4
  std::string ff(32, '\xff');
  EXPECT_EQ(crc32c::Value(ff), 0x62A8AB43u);
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<char>(i * 7));
  for (size_t split : {0u, 1u, 7u, 8u, 9u, 500u, 1000u}) {
    uint32_t a = crc32c::Value(data.data(), split);
    EXPECT_EQ(crc32c::Extend(a, data.data() + split, data.size() - split),
              crc32c::Value(data));
  }
}

}  // namespace
}  // namespace cairn
