#include "common/crypto.h"

#include <gtest/gtest.h>

#include "common/coding.h"
#include "common/compression.h"
#include "common/data_key.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

std::string Hex(const crypto::Digest& d) {
  return HexEncode(crypto::AsStringView(d));
}

TEST(CryptoTest, Sha256KnownAnswer) {
  EXPECT_EQ(Hex(crypto::Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  crypto::Sha256Stream s;
  s.Update("a");
  s.Update("bc");
  EXPECT_EQ(Hex(s.Finish()), Hex(crypto::Sha256("abc")));
}

TEST(CryptoTest, HmacSha256Rfc4231Case2) {
  EXPECT_EQ(Hex(crypto::HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CryptoTest, HkdfRfc5869Case1) {
  std::string ikm(22, '\x0b'), salt, info;
  ASSERT_TRUE(HexDecode("000102030405060708090a0b0c", &salt));
  ASSERT_TRUE(HexDecode("f0f1f2f3f4f5f6f7f8f9", &info));
  auto okm = crypto::HkdfSha256(ikm, salt, info, 42);
  ASSERT_TRUE(okm.ok());
  EXPECT_EQ(HexEncode(*okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
            "34007208d5b887185865");
}

TEST(CryptoTest, AesGcmRoundTripAndTamperDetection) {
  std::string key = crypto::RandomString(32), nonce = crypto::RandomString(12);
  std::string plain = "the quick brown fox", ct;
  uint8_t tag[16];
  ASSERT_TRUE(crypto::AesGcmEncrypt(key, nonce, "aad", plain, &ct, tag).ok());
  EXPECT_NE(ct, plain);
  std::string out;
  ASSERT_TRUE(crypto::AesGcmDecrypt(key, nonce, "aad", ct, tag, &out).ok());
  EXPECT_EQ(out, plain);

  std::string bad = ct;
  bad[0] ^= 1;
  EXPECT_EQ(crypto::AesGcmDecrypt(key, nonce, "aad", bad, tag, &out).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(crypto::AesGcmDecrypt(key, nonce, "other", ct, tag, &out).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(crypto::AesGcmEncrypt("short", nonce, "", plain, &ct, tag).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CompressionTest, RoundTripAndDamage) {
  std::string data = testing::TextLikeBytes(1 << 20, 1), frame, out;
  ASSERT_TRUE(ZstdCompress(data, 1, &frame).ok());
  EXPECT_LT(frame.size(), data.size() / 2);
  ASSERT_TRUE(ZstdDecompress(frame, data.size(), &out).ok());
  EXPECT_EQ(out, data);
  EXPECT_EQ(ZstdDecompress(frame, data.size() + 1, &out).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ZstdDecompress(frame.substr(0, frame.size() / 2), data.size(), &out)
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ZstdCompress(data, 0, &frame).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ZstdCompress(data, 20, &frame).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DataKeyTest, DerivedKeysDifferAndFileRoundTrips) {
  testing::ScratchDir dir;
  DataKey k = DataKey::Generate();
  EXPECT_NE(k.encryption_key(), k.id_key());
  EXPECT_NE(k.id_key(), k.manifest_key());
  EXPECT_EQ(k.fingerprint().size(), 16u);
  std::string path = dir.Sub("key");
  ASSERT_TRUE(k.SaveToFile(path).ok());
  auto loaded = DataKey::LoadFromFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->fingerprint(), k.fingerprint());
  EXPECT_EQ(loaded->encryption_key(), k.encryption_key());

  chmod(path.c_str(), 0644);
  EXPECT_EQ(DataKey::LoadFromFile(path).status().code(),
            absl::StatusCode::kFailedPrecondition);
  chmod(path.c_str(), 0600);
  testing::WriteFileOrDie(path, "not hex\n");
  chmod(path.c_str(), 0600);
  EXPECT_EQ(DataKey::LoadFromFile(path).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DataKey::LoadFromFile(dir.Sub("missing")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cairn
