#include "common/openssl_util.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/coding.h"
#include "common/strings.h"

namespace cairn {

BioPtr MemBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

BioPtr NewMemBio() { return BioPtr(BIO_new(BIO_s_mem())); }

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, n > 0 ? static_cast<size_t>(n) : 0);
}

std::string OpenSslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string("no OpenSSL error recorded") : out;
}

Status OpenSslError(std::string_view what) {
  return absl::InternalError(StrCat(what, ": ", OpenSslErrors()));
}

StatusOr<std::string> CertificateToPem(X509* cert) {
  BioPtr bio = NewMemBio();
  if (bio == nullptr || !PEM_write_bio_X509(bio.get(), cert)) {
    return OpenSslError("PEM write");
  }
  return BioContents(bio.get());
}

StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr bio = NewMemBio();
  if (bio == nullptr ||
      !PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                                nullptr)) {
    return OpenSslError("PEM write");
  }
  return BioContents(bio.get());
}

std::string Sha256Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!X509_digest(cert, EVP_sha256(), md, &len)) {
    ERR_clear_error();
    return "";
  }
  return HexEncode(std::string_view(reinterpret_cast<char*>(md), len));
}

}  // namespace cairn
