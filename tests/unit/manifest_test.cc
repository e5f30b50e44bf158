#include "common/manifest.h"

#include <gtest/gtest.h>

#include "common/chunk_format.h"

namespace cairn {
namespace {

Manifest Sample(const DataKey* key) {
  Manifest m;
  m.backup_id = "laptop-42";
  m.source = "laptop";
  m.kind = BackupKind::kIncremental;
  m.parent_id = "laptop-41";
  m.created_unix_us = 1763791200000000;
  m.chunk_size = 64 << 10;
  m.image_size = 10 * (64 << 10) + 100;  // 11 chunks, the last short
  m.profile_ref = "profile-7";
  if (key) m.key_fingerprint = key->fingerprint();
  for (int i = 0; i < 11; ++i) {
    m.chunks.push_back(i % 3 == 1 ? ChunkId::Zero()
                                  : ComputeChunkId(std::to_string(i), key));
  }
  m.chunks[4] = m.chunks[5] = m.chunks[6] = ChunkId::Zero();  // a zero run
  return m;
}

TEST(ManifestTest, RoundTripsUnsigned) {
  Manifest m = Sample(nullptr);
  auto enc = EncodeManifest(m, nullptr);
  ASSERT_TRUE(enc.ok()) << enc.status();
  auto dec = DecodeManifest(*enc, "test", nullptr);
  ASSERT_TRUE(dec.ok()) << dec.status();
  EXPECT_EQ(dec->backup_id, m.backup_id);
  EXPECT_EQ(dec->source, m.source);
  EXPECT_EQ(dec->kind, m.kind);
  EXPECT_EQ(dec->parent_id, m.parent_id);
  EXPECT_EQ(dec->created_unix_us, m.created_unix_us);
  EXPECT_EQ(dec->image_size, m.image_size);
  EXPECT_EQ(dec->chunk_size, m.chunk_size);
  EXPECT_EQ(dec->profile_ref, m.profile_ref);
  EXPECT_EQ(dec->chunks, m.chunks);
  EXPECT_EQ(dec->ChunkLength(10), 100u);
  EXPECT_EQ(dec->ChunkLength(0), 64u << 10);
}

TEST(ManifestTest, SignedManifestVerifiesOnlyWithItsKey) {
  DataKey key = DataKey::Generate(), other = DataKey::Generate();
  Manifest m = Sample(&key);
  auto enc = EncodeManifest(m, &key);
  ASSERT_TRUE(enc.ok());
  EXPECT_TRUE(DecodeManifest(*enc, "t", &key).ok());
  EXPECT_TRUE(
      DecodeManifest(*enc, "t", nullptr).ok());  // media agent: checksum only
  EXPECT_EQ(DecodeManifest(*enc, "t", &other).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // An encrypted manifest re-encoded without a signature is refused by key
  // holders.
  auto unsigned_enc = EncodeManifest(m, nullptr);
  ASSERT_TRUE(unsigned_enc.ok());
  EXPECT_EQ(DecodeManifest(*unsigned_enc, "t", &key).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(EncodeManifest(m, &other).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ManifestTest, EveryByteFlipIsDetectedAndNamesTheFile) {
  Manifest m = Sample(nullptr);
  std::string enc = *EncodeManifest(m, nullptr);
  for (size_t i = 0; i < enc.size(); ++i) {
    std::string bad = enc;
    bad[i] ^= 0x01;
    auto r = DecodeManifest(bad, "/store/manifests/x.cmf", nullptr);
    ASSERT_FALSE(r.ok()) << "flip at " << i;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(std::string(r.status().message()).find("/store/manifests/x.cmf"),
              std::string::npos);
  }
  for (size_t len : {size_t{0}, size_t{10}, enc.size() / 2, enc.size() - 1}) {
    EXPECT_EQ(DecodeManifest(enc.substr(0, len), "t", nullptr).status().code(),
              absl::StatusCode::kDataLoss);
  }
}

TEST(ManifestTest, RejectsInconsistentInput) {
  Manifest m = Sample(nullptr);
  m.chunks.pop_back();
  EXPECT_EQ(EncodeManifest(m, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  m = Sample(nullptr);
  m.chunk_size = 3000;
  EXPECT_EQ(EncodeManifest(m, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  m = Sample(nullptr);
  m.backup_id = "../../etc/passwd";
  EXPECT_EQ(EncodeManifest(m, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ManifestTest, ChunkSizeAndIdValidation) {
  EXPECT_TRUE(ValidateChunkSize(64 << 10).ok());
  EXPECT_TRUE(ValidateChunkSize(16 << 20).ok());
  EXPECT_FALSE(ValidateChunkSize(32 << 10).ok());
  EXPECT_FALSE(ValidateChunkSize(32 << 20).ok());
  EXPECT_FALSE(ValidateChunkSize((4 << 20) + 1).ok());
  EXPECT_TRUE(ValidateBackupId("host-1_2026.full").ok());
  for (const char* bad : {"", ".hidden", "a/b", "..", "a b", "x\n"}) {
    EXPECT_FALSE(ValidateBackupId(bad).ok()) << bad;
  }
  EXPECT_FALSE(ValidateBackupId(std::string(129, 'a')).ok());
}

}  // namespace
}  // namespace cairn
