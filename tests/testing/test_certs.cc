#include "tests/testing/test_certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdlib>

#include "common/openssl_util.h"

namespace cairn::testing {
TestKeyPair MakeSelfSignedEcCert(const std::string& common_name) {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  X509Ptr cert(X509_new());
  if (key == nullptr || cert == nullptr) std::abort();
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) std::abort();
  StatusOr<std::string> key_pem = PrivateKeyToPem(key.get());
  StatusOr<std::string> cert_pem = CertificateToPem(cert.get());
  if (!key_pem.ok() || !cert_pem.ok()) std::abort();
  return TestKeyPair{*key_pem, *cert_pem};
}

}  // namespace cairn::testing
