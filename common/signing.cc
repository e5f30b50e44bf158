#include "common/signing.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/openssl_util.h"
#include "common/strings.h"

namespace cairn {

StatusOr<std::string> SignWithKey(std::string_view body,
                                  const std::string& key_pem) {
  auto bio = MemBio(key_pem);
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    ERR_clear_error();
    return absl::InvalidArgumentError("signing key is not a PEM private key");
  }
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  const auto* data = reinterpret_cast<const unsigned char*>(body.data());
  size_t sig_len = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                         key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len, data, body.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("signing failed");
  }
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                     &sig_len, data, body.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("signing failed");
  }
  sig.resize(sig_len);
  return sig;
}

Status VerifyWithCertificate(std::string_view body, std::string_view signature,
                             const std::string& cert_pem,
                             std::string_view what) {
  auto bio = MemBio(cert_pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        StrCat(what, " signer certificate is not PEM"));
  }
  EvpPkeyPtr key(X509_get_pubkey(cert.get()));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok =
      key && ctx &&
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                           key.get()) == 1 &&
      EVP_DigestVerify(
          ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
          signature.size(), reinterpret_cast<const unsigned char*>(body.data()),
          body.size()) == 1;
  ERR_clear_error();
  if (!ok) {
    return absl::PermissionDeniedError(
        StrCat(what, " signature does not verify"));
  }
  return Status();
}

}  // namespace cairn
