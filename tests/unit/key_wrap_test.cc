// Key wrapping for one media agent (common/key_wrap.h) and browse tickets
// (common/session_ticket.h).
#include "common/key_wrap.h"

#include <gtest/gtest.h>

#include "common/crypto.h"
#include "common/session_ticket.h"
#include "tests/testing/test_certs.h"

namespace cairn {
namespace {

TEST(KeyWrapTest, OnlyTheRecipientOpensIt) {
  auto media = testing::MakeSelfSignedEcCert("media-1");
  auto other = testing::MakeSelfSignedEcCert("media-2");
  const std::string secret = crypto::RandomString(32);
  auto wrapped = WrapKey(secret, media.cert_pem);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_EQ(wrapped->find(secret), std::string::npos);

  auto opened = UnwrapKey(*wrapped, media.key_pem);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, secret);

  auto wrong = UnwrapKey(*wrapped, other.key_pem);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied)
      << wrong.status();
}

TEST(KeyWrapTest, EachWrapIsFresh) {
  auto media = testing::MakeSelfSignedEcCert("media-1");
  const std::string secret = crypto::RandomString(32);
  auto a = WrapKey(secret, media.cert_pem);
  auto b = WrapKey(secret, media.cert_pem);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(KeyWrapTest, EveryAlteredByteIsRefused) {
  auto media = testing::MakeSelfSignedEcCert("media-1");
  auto wrapped = WrapKey(crypto::RandomString(32), media.cert_pem);
  ASSERT_TRUE(wrapped.ok());
  for (size_t i = 0; i < wrapped->size(); ++i) {
    std::string bad = *wrapped;
    bad[i] ^= 0x01;
    auto r = UnwrapKey(bad, media.key_pem);
    EXPECT_FALSE(r.ok()) << "byte " << i;
    EXPECT_TRUE(absl::IsInvalidArgument(r.status()) ||
                absl::IsPermissionDenied(r.status()))
        << "byte " << i << ": " << r.status();
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      UnwrapKey(wrapped->substr(0, 40), media.key_pem).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(UnwrapKey("", media.key_pem).status()));
}

TEST(KeyWrapTest, BadInputsAreClearErrors) {
  auto media = testing::MakeSelfSignedEcCert("media-1");
  EXPECT_TRUE(absl::IsInvalidArgument(WrapKey("", media.cert_pem).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      WrapKey(std::string(2000, 'k'), media.cert_pem).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(WrapKey("secret", "not a certificate").status()));
  auto wrapped = WrapKey("secret", media.cert_pem);
  ASSERT_TRUE(wrapped.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(UnwrapKey(*wrapped, "junk").status()));
}

TEST(BrowseTicketTest, CarriesTheWrappedKeyAndIsCheckedForItsOperation) {
  auto server = testing::MakeSelfSignedEcCert("server");
  auto media = testing::MakeSelfSignedEcCert("media-1");
  SessionTicket t;
  t.operation = SessionTicket::Operation::kBrowse;
  t.client_id = "admin";
  t.backup_id = "pc-1-20261201T000000Z-0001";
  t.media_id = "media-1";
  t.expires_unix_us = 2'000'000'000'000'000;
  auto wrapped = WrapKey(crypto::RandomString(32), media.cert_pem);
  ASSERT_TRUE(wrapped.ok());
  t.wrapped_key = *wrapped;
  auto signed_ticket = SignTicket(t, server.key_pem);
  ASSERT_TRUE(signed_ticket.ok()) << signed_ticket.status();

  const int64_t now = 1'800'000'000'000'000;
  auto ok = AuthorizeTicket(*signed_ticket, server.cert_pem, now, "media-1",
                            "admin", SessionTicket::Operation::kBrowse);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->wrapped_key, *wrapped);
  EXPECT_EQ(ok->operation, SessionTicket::Operation::kBrowse);

  auto as_restore =
      AuthorizeTicket(*signed_ticket, server.cert_pem, now, "media-1", "admin",
                      SessionTicket::Operation::kRestore);
  EXPECT_TRUE(absl::IsPermissionDenied(as_restore.status()));
  EXPECT_NE(as_restore.status().message().find("restore"), std::string::npos);
  EXPECT_TRUE(absl::IsPermissionDenied(
      AuthorizeTicket(*signed_ticket, server.cert_pem, now, "media-2", "admin",
                      SessionTicket::Operation::kBrowse)
          .status()));
  EXPECT_TRUE(absl::IsPermissionDenied(
      AuthorizeTicket(*signed_ticket, server.cert_pem, now, "media-1", "pc-1",
                      SessionTicket::Operation::kBrowse)
          .status()));
}

}  // namespace
}  // namespace cairn
