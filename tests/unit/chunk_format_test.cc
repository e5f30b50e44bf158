#include "common/chunk_format.h"

#include <gtest/gtest.h>

#include "common/coding.h"
#include "common/crypto.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

TEST(ChunkFormatTest, CompressibleChunkRoundTripsCompressed) {
  std::string plain = testing::TextLikeBytes(1 << 20, 3), stored, out;
  ChunkId id = ComputeChunkId(plain, nullptr);
  EXPECT_EQ(id.ToHex(), HexEncode(crypto::AsStringView(crypto::Sha256(plain))));
  ASSERT_TRUE(EncodeChunk(id, plain, {}, &stored).ok());
  EXPECT_LT(stored.size(), plain.size() / 2);
  auto hdr = CheckStoredChunk(stored);
  ASSERT_TRUE(hdr.ok());
  EXPECT_EQ(hdr->flags, kChunkCompressed);
  EXPECT_EQ(hdr->plain_size, plain.size());
  ASSERT_TRUE(DecodeChunk(id, stored, nullptr, &out).ok());
  EXPECT_EQ(out, plain);
}

TEST(ChunkFormatTest, IncompressibleChunkIsStoredRaw) {
  std::string plain = testing::PseudoRandomBytes(256 << 10, 4), stored, out;
  ChunkId id = ComputeChunkId(plain, nullptr);
  ASSERT_TRUE(EncodeChunk(id, plain, {}, &stored).ok());
  EXPECT_EQ(stored.size(), kChunkHeaderSize + plain.size());
  EXPECT_EQ(CheckStoredChunk(stored)->flags, 0);
  ASSERT_TRUE(DecodeChunk(id, stored, nullptr, &out).ok());
  EXPECT_EQ(out, plain);
}

TEST(ChunkFormatTest, EncryptedChunkNeedsKeyAndDetectsTampering) {
  DataKey key = DataKey::Generate(), other = DataKey::Generate();
  std::string plain = testing::TextLikeBytes(300000, 5), stored, out;
  ChunkId id = ComputeChunkId(plain, &key);
  EXPECT_NE(id, ComputeChunkId(plain, nullptr));  // HMAC id, not SHA-256
  EXPECT_NE(id, ComputeChunkId(plain, &other));
  ASSERT_TRUE(EncodeChunk(id, plain, {1, &key}, &stored).ok());
  EXPECT_EQ(CheckStoredChunk(stored)->flags,
            kChunkCompressed | kChunkEncrypted);
  // Plaintext must not appear in the stored bytes.
  EXPECT_EQ(stored.find(plain.substr(0, 64)), std::string::npos);

  ASSERT_TRUE(DecodeChunk(id, stored, &key, &out).ok());
  EXPECT_EQ(out, plain);
  EXPECT_EQ(DecodeChunk(id, stored, nullptr, &out).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DecodeChunk(id, stored, &other, &out).code(),
            absl::StatusCode::kDataLoss);
  // Stored under another id: the GCM AAD binds the ciphertext to its id.
  ChunkId wrong = ComputeChunkId("x", &key);
  EXPECT_EQ(DecodeChunk(wrong, stored, &key, &out).code(),
            absl::StatusCode::kDataLoss);
}

TEST(ChunkFormatTest, EveryCorruptionIsDataLoss) {
  std::string plain = testing::TextLikeBytes(100000, 6), stored, out;
  ChunkId id = ComputeChunkId(plain, nullptr);
  ASSERT_TRUE(EncodeChunk(id, plain, {}, &stored).ok());
  for (size_t pos : {size_t{0}, size_t{5}, size_t{9}, size_t{17}, size_t{50},
                     kChunkHeaderSize + 3, stored.size() - 1}) {
    std::string bad = stored;
    bad[pos] ^= 0x40;
    EXPECT_EQ(CheckStoredChunk(bad).status().code(),
              absl::StatusCode::kDataLoss)
        << pos;
    EXPECT_EQ(DecodeChunk(id, bad, nullptr, &out).code(),
              absl::StatusCode::kDataLoss)
        << pos;
  }
  EXPECT_EQ(CheckStoredChunk(stored.substr(0, 20)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(
      CheckStoredChunk(stored.substr(0, stored.size() - 1)).status().code(),
      absl::StatusCode::kDataLoss);
  EXPECT_EQ(CheckStoredChunk(stored + "x").status().code(),
            absl::StatusCode::kDataLoss);
  // Intact stored form, but not the content of the id it is filed under.
  ChunkId other = ComputeChunkId("other", nullptr);
  EXPECT_EQ(DecodeChunk(other, stored, nullptr, &out).code(),
            absl::StatusCode::kDataLoss);
}

TEST(ChunkFormatTest, ZeroDetection) {
  EXPECT_TRUE(IsAllZero(std::string(4 << 20, '\0')));
  EXPECT_TRUE(IsAllZero(""));
  std::string almost(100003, '\0');
  almost[100002] = 1;
  EXPECT_FALSE(IsAllZero(almost));
}

}  // namespace
}  // namespace cairn
