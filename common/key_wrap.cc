// Format: docs/formats/key-wrap.md.
#include "common/key_wrap.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/crypto.h"
#include "common/openssl_util.h"
#include "common/strings.h"

namespace cairn {
namespace {

constexpr char kMagic[4] = {'C', 'K', 'W', '1'};
constexpr size_t kPointSize = 65;  // uncompressed P-256 point: 04 || X || Y
constexpr size_t kNonceSize = 12;
constexpr size_t kHeaderSize = sizeof(kMagic) + kPointSize;
constexpr size_t kMaxSecret = 1024;
constexpr char kInfo[] = "cairn key wrap v1";

// The uncompressed public point of a P-256 key; InvalidArgument for any
// other key type or curve.
StatusOr<std::string> P256Point(EVP_PKEY* key, std::string_view whose) {
  char group[64] = {0};
  size_t group_len = 0;
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
      EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                     sizeof(group), &group_len) != 1 ||
      std::string_view(group, group_len) != "prime256v1") {
    return absl::InvalidArgumentError(
        StrCat(whose, " key is not a P-256 key; key wrapping needs one"));
  }
  std::string point(kPointSize, '\0');
  size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(
          key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
          reinterpret_cast<unsigned char*>(point.data()), point.size(),
          &len) != 1 ||
      len != kPointSize) {
    return OpenSslError(StrCat("reading the ", whose, " public key"));
  }
  return point;
}

// A P-256 public key from its uncompressed point.
StatusOr<EvpPkeyPtr> KeyFromPoint(std::string_view point) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  char group[] = "prime256v1";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                        const_cast<char*>(point.data()),
                                        point.size()),
      OSSL_PARAM_construct_end()};
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    OpenSslErrors();  // drain
    return absl::InvalidArgumentError(
        "wrapped key: the ephemeral public key is not a P-256 point");
  }
  return EvpPkeyPtr(raw);
}

// ECDH of `own` (private) with `peer` (public), then HKDF into a 32-byte
// AES key bound to both points.
StatusOr<std::string> DeriveWrapKey(EVP_PKEY* own, EVP_PKEY* peer,
                                    std::string_view ephemeral_point,
                                    std::string_view recipient_point) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own, nullptr));
  size_t len = 0;
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1) {
    return OpenSslError("ECDH");
  }
  std::string shared(len, '\0');
  if (EVP_PKEY_derive(ctx.get(),
                      reinterpret_cast<unsigned char*>(shared.data()),
                      &len) != 1) {
    return OpenSslError("ECDH");
  }
  shared.resize(len);
  auto key = crypto::HkdfSha256(
      shared, StrCat(ephemeral_point, recipient_point), kInfo, 32);
  OPENSSL_cleanse(shared.data(), shared.size());
  return key;
}

}  // namespace

StatusOr<std::string> WrapKey(std::string_view secret,
                              const std::string& recipient_cert_pem) {
  if (secret.empty() || secret.size() > kMaxSecret) {
    return absl::InvalidArgumentError(StrCat(
        "a wrapped secret has 1-", kMaxSecret, " bytes, not ", secret.size()));
  }
  BioPtr bio = MemBio(recipient_cert_pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    OpenSslErrors();
    return absl::InvalidArgumentError(
        "key wrap: the recipient certificate is not PEM");
  }
  EVP_PKEY* recipient = X509_get0_pubkey(cert.get());
  if (recipient == nullptr) return OpenSslError("certificate public key");
  CAIRN_ASSIGN_OR_RETURN(std::string recipient_point,
                         P256Point(recipient, "the recipient's"));
  EvpPkeyPtr ephemeral(EVP_EC_gen("P-256"));
  if (!ephemeral) return OpenSslError("P-256 keygen");
  CAIRN_ASSIGN_OR_RETURN(std::string ephemeral_point,
                         P256Point(ephemeral.get(), "the ephemeral"));
  CAIRN_ASSIGN_OR_RETURN(std::string aes_key,
                         DeriveWrapKey(ephemeral.get(), recipient,
                                       ephemeral_point, recipient_point));
  std::string out(kMagic, sizeof(kMagic));
  out += ephemeral_point;
  const std::string nonce = crypto::RandomString(kNonceSize);
  const std::string aad = out;
  out += nonce;
  uint8_t tag[crypto::kGcmTagSize];
  Status s = crypto::AesGcmEncrypt(aes_key, nonce, aad, secret, &out, tag);
  OPENSSL_cleanse(aes_key.data(), aes_key.size());
  CAIRN_RETURN_IF_ERROR(s);
  out.append(reinterpret_cast<const char*>(tag), crypto::kGcmTagSize);
  return out;
}

StatusOr<std::string> UnwrapKey(std::string_view wrapped,
                                const std::string& recipient_key_pem) {
  if (wrapped.size() < kHeaderSize + kNonceSize + 1 + crypto::kGcmTagSize ||
      wrapped.size() >
          kHeaderSize + kNonceSize + kMaxSecret + crypto::kGcmTagSize ||
      wrapped.substr(0, sizeof(kMagic)) !=
          std::string_view(kMagic, sizeof(kMagic))) {
    return absl::InvalidArgumentError("malformed wrapped key");
  }
  BioPtr bio = MemBio(recipient_key_pem);
  EvpPkeyPtr own(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!own) {
    OpenSslErrors();
    return absl::InvalidArgumentError("key unwrap: the private key is not PEM");
  }
  CAIRN_ASSIGN_OR_RETURN(std::string own_point, P256Point(own.get(), "our"));
  const std::string_view ephemeral_point =
      wrapped.substr(sizeof(kMagic), kPointSize);
  CAIRN_ASSIGN_OR_RETURN(EvpPkeyPtr ephemeral, KeyFromPoint(ephemeral_point));
  CAIRN_ASSIGN_OR_RETURN(
      std::string aes_key,
      DeriveWrapKey(own.get(), ephemeral.get(), ephemeral_point, own_point));
  const std::string_view aad = wrapped.substr(0, kHeaderSize);
  const std::string_view nonce = wrapped.substr(kHeaderSize, kNonceSize);
  const std::string_view body = wrapped.substr(
      kHeaderSize + kNonceSize,
      wrapped.size() - kHeaderSize - kNonceSize - crypto::kGcmTagSize);
  const auto* tag = reinterpret_cast<const uint8_t*>(
      wrapped.data() + wrapped.size() - crypto::kGcmTagSize);
  std::string secret;
  Status s = crypto::AesGcmDecrypt(aes_key, nonce, aad, body, tag, &secret);
  OPENSSL_cleanse(aes_key.data(), aes_key.size());
  if (!s.ok()) {
    return absl::PermissionDeniedError(
        "wrapped key does not open with this media agent's key (wrapped for "
        "another media agent, or altered)");
  }
  return secret;
}

}  // namespace cairn
