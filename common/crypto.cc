#include "common/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>

#include "common/openssl_util.h"
#include "common/strings.h"

namespace cairn::crypto {
namespace {

std::string OpensslError(std::string_view what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return StrCat(what, ": ", buf);
}

const EVP_MD* Sha256Md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* cipher =
      EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

EVP_MAC* HmacAlgorithm() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

using CipherCtx = EvpCipherCtxPtr;

}  // namespace

Digest Sha256(std::string_view data) {
  Digest d;
  unsigned int len = 0;
  // EVP_Digest only fails on allocation failure; treat as fatal.
  if (EVP_Digest(data.data(), data.size(), d.data(), &len, Sha256Md(),
                 nullptr) != 1) {
    std::abort();
  }
  return d;
}

Digest HmacSha256(std::string_view key, std::string_view data) {
  Digest d{};
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(HmacAlgorithm());
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end()};
  size_t out_len = 0;
  if (ctx == nullptr ||
      EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()),
                   key.size(), params) != 1 ||
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1 ||
      EVP_MAC_final(ctx, d.data(), &out_len, d.size()) != 1) {
    std::abort();  // only on allocation failure
  }
  EVP_MAC_CTX_free(ctx);
  return d;
}

struct Sha256Stream::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256Stream::Sha256Stream() : impl_(new Impl) {
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr ||
      EVP_DigestInit_ex(impl_->ctx, Sha256Md(), nullptr) != 1) {
    std::abort();
  }
}
Sha256Stream::~Sha256Stream() {
  EVP_MD_CTX_free(impl_->ctx);
  delete impl_;
}
void Sha256Stream::Update(std::string_view data) {
  EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}
Digest Sha256Stream::Finish() {
  Digest d;
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, d.data(), &len);
  return d;
}

StatusOr<std::string> HkdfSha256(std::string_view ikm, std::string_view salt,
                                 std::string_view info, size_t length) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return absl::InternalError(OpensslError("HKDF fetch"));
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (ctx == nullptr) return absl::InternalError(OpensslError("HKDF ctx"));
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_KEY, const_cast<char*>(ikm.data()), ikm.size()),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()), salt.size()),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()),
      OSSL_PARAM_construct_end()};
  std::string out(length, '\0');
  int rc = EVP_KDF_derive(ctx, reinterpret_cast<unsigned char*>(out.data()),
                          out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (rc != 1) return absl::InternalError(OpensslError("HKDF derive"));
  return out;
}

Status RandomBytes(void* buf, size_t n) {
  if (RAND_bytes(static_cast<unsigned char*>(buf), static_cast<int>(n)) != 1) {
    return absl::InternalError(OpensslError("RAND_bytes"));
  }
  return absl::OkStatus();
}

std::string RandomString(size_t n) {
  std::string s(n, '\0');
  if (!RandomBytes(s.data(), n).ok()) std::abort();
  return s;
}

namespace {

// A GCM context keyed for encryption (`encrypt`) or decryption, with the
// additional authenticated data already absorbed.
StatusOr<CipherCtx> InitGcm(bool encrypt, std::string_view key,
                            std::string_view nonce, std::string_view aad) {
  if (key.size() != kAesKeySize || nonce.size() != kGcmNonceSize) {
    return absl::InvalidArgumentError("AES-256-GCM: bad key or nonce size");
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return absl::InternalError("EVP_CIPHER_CTX_new failed");
  if (EVP_CipherInit_ex2(ctx.get(), Aes256Gcm(),
                         reinterpret_cast<const unsigned char*>(key.data()),
                         reinterpret_cast<const unsigned char*>(nonce.data()),
                         encrypt ? 1 : 0, nullptr) != 1) {
    return absl::InternalError(OpensslError("AES-GCM init"));
  }
  int len = 0;
  if (!aad.empty() &&
      EVP_CipherUpdate(ctx.get(), nullptr, &len,
                       reinterpret_cast<const unsigned char*>(aad.data()),
                       static_cast<int>(aad.size())) != 1) {
    return absl::InternalError(OpensslError("AES-GCM aad"));
  }
  return ctx;
}

// Runs `in` through the context into `dst` (same length). Returns the
// number of bytes written, or -1.
int CipherBytes(EVP_CIPHER_CTX* ctx, std::string_view in, char* dst) {
  int len = 0;
  if (EVP_CipherUpdate(ctx, reinterpret_cast<unsigned char*>(dst), &len,
                       reinterpret_cast<const unsigned char*>(in.data()),
                       static_cast<int>(in.size())) != 1) {
    return -1;
  }
  return len;
}

}  // namespace

Status AesGcmEncrypt(std::string_view key, std::string_view nonce,
                     std::string_view aad, std::string_view plaintext,
                     std::string* out, uint8_t tag[kGcmTagSize]) {
  CAIRN_ASSIGN_OR_RETURN(CipherCtx ctx, InitGcm(true, key, nonce, aad));
  size_t base = out->size();
  out->resize(base + plaintext.size());
  char* dst = out->data() + base;
  int len = CipherBytes(ctx.get(), plaintext, dst);
  int final_len = 0;
  if (len < 0 ||
      EVP_EncryptFinal_ex(ctx.get(),
                          reinterpret_cast<unsigned char*>(dst) + len,
                          &final_len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagSize, tag) !=
          1) {
    out->resize(base);
    return absl::InternalError(OpensslError("AES-GCM encrypt"));
  }
  return absl::OkStatus();
}

Status AesGcmDecrypt(std::string_view key, std::string_view nonce,
                     std::string_view aad, std::string_view ciphertext,
                     const uint8_t tag[kGcmTagSize], std::string* out) {
  out->clear();
  CAIRN_ASSIGN_OR_RETURN(CipherCtx ctx, InitGcm(false, key, nonce, aad));
  out->resize(ciphertext.size());
  int len = CipherBytes(ctx.get(), ciphertext, out->data());
  if (len < 0 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagSize,
                          const_cast<uint8_t*>(tag)) != 1) {
    out->clear();
    return absl::InternalError(OpensslError("AES-GCM decrypt"));
  }
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(),
                          reinterpret_cast<unsigned char*>(out->data()) + len,
                          &final_len) != 1) {
    ERR_clear_error();
    out->clear();
    return absl::DataLossError(
        "AES-256-GCM authentication failed (wrong key or damaged data)");
  }
  return absl::OkStatus();
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace cairn::crypto
