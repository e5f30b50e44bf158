// Cryptographic primitives over OpenSSL 3 EVP: SHA-256, HMAC-SHA256,
// HKDF-SHA256, AES-256-GCM and a CSPRNG. Nothing here is hand-rolled.
//
// Thread safety: every function is thread-safe (OpenSSL 3 algorithm objects
// are fetched once and shared read-only; contexts are per call).
#ifndef CAIRN_COMMON_CRYPTO_H_
#define CAIRN_COMMON_CRYPTO_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn::crypto {

inline constexpr size_t kSha256Size = 32;
inline constexpr size_t kAesKeySize = 32;
inline constexpr size_t kGcmNonceSize = 12;
inline constexpr size_t kGcmTagSize = 16;

using Digest = std::array<uint8_t, kSha256Size>;

Digest Sha256(std::string_view data);

// HMAC-SHA256 of `data` under `key` (any length; 32 bytes in Cairn).
Digest HmacSha256(std::string_view key, std::string_view data);

// Incremental SHA-256 for data that arrives in pieces. Not thread-safe.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(std::string_view data);
  // REQUIRES: called once; the stream is unusable afterwards.
  Digest Finish();

 private:
  struct Impl;
  Impl* impl_;
};

// HKDF-SHA256 (RFC 5869): derives `length` bytes from input key material.
StatusOr<std::string> HkdfSha256(std::string_view ikm, std::string_view salt,
                                 std::string_view info, size_t length);

// Fills `buf` with `n` bytes from OpenSSL's CSPRNG.
Status RandomBytes(void* buf, size_t n);
std::string RandomString(size_t n);

// AES-256-GCM. `key` is 32 bytes, `nonce` 12 bytes; the nonce must never be
// reused with the same key (Cairn draws it at random per chunk).
// Appends the ciphertext (same length as the plaintext) to `*out` and writes
// the 16-byte authentication tag to `tag`.
Status AesGcmEncrypt(std::string_view key, std::string_view nonce,
                     std::string_view aad, std::string_view plaintext,
                     std::string* out, uint8_t tag[kGcmTagSize]);
// Decrypts and authenticates. Returns DataLoss if the tag does not verify
// (wrong key, damaged ciphertext or AAD); `*out` is then left empty.
Status AesGcmDecrypt(std::string_view key, std::string_view nonce,
                     std::string_view aad, std::string_view ciphertext,
                     const uint8_t tag[kGcmTagSize], std::string* out);

// Constant-time comparison of two equal-length byte strings.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

inline std::string_view AsStringView(const Digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

}  // namespace cairn::crypto

#endif  // CAIRN_COMMON_CRYPTO_H_
