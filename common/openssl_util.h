// Ownership and small helpers for OpenSSL objects, shared by the TLS code
// (common/tls.cc, common/peer_identity.cc), the internal CA
// (server/certificate_authority.cc), session tickets
// (common/session_ticket.cc), AES-GCM/HMAC (common/crypto.cc) and the test
// certificates (tests/testing/test_certs.cc).
//
// - `XxxPtr` aliases: std::unique_ptr that frees the OpenSSL object with its
//   own free function. Construct them straight from the OpenSSL call that
//   allocates: `X509Ptr cert(PEM_read_bio_X509(bio.get(), ...));`.
// - Memory BIOs: MemBio(data) reads PEM text, NewMemBio() is written to and
//   BioContents() returns what was written.
// - Errors: OpenSslErrors() drains this thread's OpenSSL error queue into one
//   line for a Status message; OpenSslError(what) wraps it in InternalError.
//
// Thread safety: every function here is thread-safe (OpenSSL's error queue is
// per thread). Links OpenSSL::Crypto (PUBLIC on cairn_common).
#ifndef CAIRN_COMMON_OPENSSL_UTIL_H_
#define CAIRN_COMMON_OPENSSL_UTIL_H_

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cairn {

// A deleter that calls the OpenSSL free function `Fn`.
template <auto Fn>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};

using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
using EvpCipherCtxPtr =
    std::unique_ptr<EVP_CIPHER_CTX, OpenSslDeleter<EVP_CIPHER_CTX_free>>;
using EvpMdCtxPtr =
    std::unique_ptr<EVP_MD_CTX, OpenSslDeleter<EVP_MD_CTX_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using EvpPkeyCtxPtr =
    std::unique_ptr<EVP_PKEY_CTX, OpenSslDeleter<EVP_PKEY_CTX_free>>;
using GeneralNamesPtr =
    std::unique_ptr<GENERAL_NAMES, OpenSslDeleter<GENERAL_NAMES_free>>;
using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using X509ExtPtr =
    std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, OpenSslDeleter<X509_REQ_free>>;
using X509StorePtr =
    std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE_free>>;
using X509StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>>;

// A read-only memory BIO over `data`. REQUIRES: `data` outlives the BIO.
BioPtr MemBio(std::string_view data);

// A new, empty, writable memory BIO (nullptr only when out of memory).
BioPtr NewMemBio();

// Everything written so far to the memory BIO `bio`.
std::string BioContents(BIO* bio);

// Drains this thread's OpenSSL error queue into one line ("e1; e2"), or
// "no OpenSSL error recorded" when it is empty.
std::string OpenSslErrors();

// InternalError "<what>: <OpenSslErrors()>".
Status OpenSslError(std::string_view what);

// `cert` as PEM text. InternalError if OpenSSL cannot write it.
StatusOr<std::string> CertificateToPem(X509* cert);

// `key` as unencrypted PKCS#8 PEM text. InternalError if OpenSSL cannot write
// it.
StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key);

// Lowercase hex SHA-256 of the DER encoding of `cert` (what Cairn calls a
// certificate fingerprint); empty if OpenSSL cannot compute it.
std::string Sha256Fingerprint(X509* cert);

}  // namespace cairn

#endif  // CAIRN_COMMON_OPENSSL_UTIL_H_
