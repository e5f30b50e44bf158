// Commit receipts (common/commit_receipt.h) and media.yaml
// (media_agent/media_config.h): what a separate media agent signs and reads.
#include "common/commit_receipt.h"

#include <gtest/gtest.h>

#include "media_agent/media_config.h"
#include "tests/testing/test_certs.h"

namespace cairn {
namespace {

CommitReceipt Sample() {
  CommitReceipt r;
  r.media_id = "media-1";
  r.client_id = "pc-17";
  r.job_id = 42;
  r.backup_id = "pc-17-20261201T000000Z-abcd";
  r.manifest_sha256 = ManifestDigest("encoded manifest");
  r.image_size = 1 << 30;
  r.committed_unix_us = 1'700'000'000'000'000;
  return r;
}

TEST(CommitReceiptTest, RoundTripsAndVerifiesWithTheSignersCertificate) {
  auto signer = testing::MakeSelfSignedEcCert("media-1");
  auto signed_receipt = SignCommitReceipt(Sample(), signer.key_pem);
  ASSERT_TRUE(signed_receipt.ok()) << signed_receipt.status();
  auto r = VerifyCommitReceipt(*signed_receipt, signer.cert_pem);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->media_id, "media-1");
  EXPECT_EQ(r->client_id, "pc-17");
  EXPECT_EQ(r->job_id, 42u);
  EXPECT_EQ(r->backup_id, Sample().backup_id);
  EXPECT_EQ(r->manifest_sha256, ManifestDigest("encoded manifest"));
  EXPECT_EQ(r->manifest_sha256.size(), 32u);
  EXPECT_EQ(r->image_size, 1u << 30);
  EXPECT_EQ(r->committed_unix_us, Sample().committed_unix_us);
}

TEST(CommitReceiptTest, AnotherSignerOrAnyChangedByteIsRefused) {
  auto signer = testing::MakeSelfSignedEcCert("media-1");
  auto other = testing::MakeSelfSignedEcCert("media-2");
  auto signed_receipt = SignCommitReceipt(Sample(), signer.key_pem);
  ASSERT_TRUE(signed_receipt.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(
      VerifyCommitReceipt(*signed_receipt, other.cert_pem).status()));
  // Flip each byte in turn: it either no longer parses or no longer verifies.
  for (size_t i = 0; i < signed_receipt->size(); ++i) {
    std::string damaged = *signed_receipt;
    damaged[i] ^= 0x01;
    auto r = VerifyCommitReceipt(damaged, signer.cert_pem);
    EXPECT_FALSE(r.ok()) << "byte " << i;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      VerifyCommitReceipt("", signer.cert_pem).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      VerifyCommitReceipt(*signed_receipt, "not a certificate").status()));
}

TEST(MediaConfigTest, RoundTripsAndDefaultsListenToTheAddress) {
  MediaConfig c;
  c.server = "cairn.example:7443";
  c.identity = "media-1";
  c.address = "10.0.0.5:7444";
  c.store = "/srv/store with \"quotes\"";
  auto parsed = ParseMediaConfig(EncodeMediaConfig(c), "media.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->server, c.server);
  EXPECT_EQ(parsed->identity, c.identity);
  EXPECT_EQ(parsed->address, c.address);
  EXPECT_EQ(parsed->listen, c.address);
  EXPECT_EQ(parsed->store, c.store);
}

TEST(MediaConfigTest, MissingOrUnknownKeysAreNamed) {
  auto missing = ParseMediaConfig("server: a:1\naddress: b:2\n", "media.yaml");
  ASSERT_TRUE(absl::IsInvalidArgument(missing.status()));
  EXPECT_NE(missing.status().message().find("identity"), std::string::npos);
  auto unknown = ParseMediaConfig(
      "server: a:1\nidentity: m\naddress: b:2\nstroe: /x\n", "media.yaml");
  ASSERT_TRUE(absl::IsInvalidArgument(unknown.status()));
  EXPECT_NE(unknown.status().message().find("stroe"), std::string::npos);
}

}  // namespace
}  // namespace cairn
