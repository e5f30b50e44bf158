// A throwaway self-signed EC P-256 key and certificate for tests that need a
// signer (session tickets) without a certificate authority.
#ifndef CAIRN_TESTS_TESTING_TEST_CERTS_H_
#define CAIRN_TESTS_TESTING_TEST_CERTS_H_

#include <string>

namespace cairn::testing {

struct TestKeyPair {
  std::string key_pem;
  std::string cert_pem;
};

TestKeyPair MakeSelfSignedEcCert(const std::string& common_name);

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_TEST_CERTS_H_
