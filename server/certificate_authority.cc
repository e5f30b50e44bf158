#include "server/certificate_authority.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <ctime>
#include <utility>

#include "common/env.h"
#include "common/openssl_util.h"
#include "common/strings.h"
#include "common/tls.h"

namespace cairn {
namespace {

using Clock = std::chrono::system_clock;
constexpr auto kBackdate = std::chrono::minutes(5);

StatusOr<EvpPkeyPtr> NewP256Key() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError("P-256 key generation");
  return key;
}

// DNS names in certificates: letters, digits, '-' and '.', 1..253 chars.
bool IsValidDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' ||
      name.front() == '-')
    return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// The fields of a leaf certificate that differ between kinds.
struct LeafSpec {
  std::string common_name;
  std::vector<std::pair<int, std::string>> sans;  // {GEN_DNS|GEN_IPADD|GEN_URI}
  std::string extended_key_usage;  // e.g. "clientAuth" or "serverAuth"
};

// Adds DNS and IP SANs for a TLS server, rejecting malformed ones.
Status AddServerNames(const std::vector<std::string>& dns_names,
                      const std::vector<std::string>& ip_addresses,
                      LeafSpec* spec) {
  auto has = [&](int type, const std::string& v) {
    for (const auto& [t, s] : spec->sans)
      if (t == type && s == v) return true;
    return false;
  };
  for (const std::string& name : dns_names) {
    if (!IsValidDnsName(name)) {
      return absl::InvalidArgumentError(
          StrCat("'", name, "' is not a valid DNS name for a certificate"));
    }
    if (!has(GEN_DNS, name)) spec->sans.emplace_back(GEN_DNS, name);
  }
  for (const std::string& ip : ip_addresses) {
    ASN1_OCTET_STRING* parsed = a2i_IPADDRESS(ip.c_str());
    ASN1_OCTET_STRING_free(parsed);
    if (parsed == nullptr) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          StrCat("'", ip, "' is not an IPv4 or IPv6 address"));
    }
    if (!has(GEN_IPADD, ip)) spec->sans.emplace_back(GEN_IPADD, ip);
  }
  return absl::OkStatus();
}

Status SetName(X509_NAME* name, std::string_view common_name) {
  std::string cn(common_name);
  if (!X509_NAME_add_entry_by_txt(
          name, "O", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>("Cairn"), -1, -1, 0) ||
      (!cn.empty() &&
       !X509_NAME_add_entry_by_txt(
           name, "CN", MBSTRING_UTF8,
           reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0))) {
    return OpenSslError("certificate name");
  }
  return absl::OkStatus();
}

Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (ext == nullptr || !X509_add_ext(cert, ext.get(), -1)) {
    return OpenSslError(StrCat("certificate extension ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

// Version, random serial, validity, subject, issuer and public key.
Status FillCommonFields(X509* cert, std::string_view common_name,
                        X509_NAME* issuer_name, EVP_PKEY* public_key,
                        Clock::time_point not_before,
                        Clock::time_point not_after) {
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return OpenSslError("serial");
  serial[0] &= 0x7f;  // positive
  serial[0] |= 0x01;  // never zero
  BignumPtr bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  if (bn == nullptr ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError("serial");
  }
  if (!X509_set_version(cert, X509_VERSION_3) ||
      ASN1_TIME_set(X509_getm_notBefore(cert), Clock::to_time_t(not_before)) ==
          nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), Clock::to_time_t(not_after)) ==
          nullptr ||
      !X509_set_pubkey(cert, public_key)) {
    return OpenSslError("certificate fields");
  }
  CAIRN_RETURN_IF_ERROR(SetName(X509_get_subject_name(cert), common_name));
  if (issuer_name == nullptr) issuer_name = X509_get_subject_name(cert);
  if (!X509_set_issuer_name(cert, issuer_name)) {
    return OpenSslError("issuer name");
  }
  return absl::OkStatus();
}

StatusOr<Clock::time_point> CertNotAfter(const X509* cert) {
  struct tm tm {};
  if (!ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm)) {
    return OpenSslError("reading notAfter");
  }
  return Clock::from_time_t(timegm(&tm));
}

// Issues a leaf for `public_key` signed by the CA.
StatusOr<std::string> SignLeaf(EVP_PKEY* ca_key, X509* ca_cert,
                               const LeafSpec& spec, EVP_PKEY* public_key,
                               const IssueOptions& options) {
  const Clock::time_point now = Clock::now();
  if (options.ttl.count() <= 0 && !options.not_after.has_value()) {
    return absl::InvalidArgumentError("certificate ttl must be positive");
  }
  Clock::time_point not_before = options.not_before.value_or(now - kBackdate);
  Clock::time_point not_after = options.not_after.value_or(now + options.ttl);
  // A leaf never outlives its CA.
  CAIRN_ASSIGN_OR_RETURN(Clock::time_point ca_not_after, CertNotAfter(ca_cert));
  if (not_after > ca_not_after) not_after = ca_not_after;
  if (not_after <= not_before) {
    return absl::InvalidArgumentError(
        "certificate validity window is empty (not_after <= not_before)");
  }

  X509Ptr cert(X509_new());
  if (cert == nullptr) return OpenSslError("X509_new");
  CAIRN_RETURN_IF_ERROR(FillCommonFields(cert.get(), spec.common_name,
                                         X509_get_subject_name(ca_cert),
                                         public_key, not_before, not_after));
  CAIRN_RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert, NID_basic_constraints,
                                     "critical,CA:FALSE"));
  CAIRN_RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert, NID_key_usage,
                                     "critical,digitalSignature"));
  CAIRN_RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert, NID_ext_key_usage,
                                     spec.extended_key_usage.c_str()));
  CAIRN_RETURN_IF_ERROR(
      AddExtension(cert.get(), ca_cert, NID_subject_key_identifier, "hash"));
  CAIRN_RETURN_IF_ERROR(AddExtension(
      cert.get(), ca_cert, NID_authority_key_identifier, "keyid:always"));

  // SANs are built as GENERAL_NAMEs, not from a config string, so no value
  // can smuggle in extra names.
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  for (const auto& [type, value] : spec.sans) {
    GENERAL_NAME* name =
        a2i_GENERAL_NAME(nullptr, nullptr, nullptr, type, value.c_str(), 0);
    if (name == nullptr) {
      return absl::InvalidArgumentError(StrCat(
          "subjectAltName '", value, "' is malformed: ", OpenSslErrors()));
    }
    sk_GENERAL_NAME_push(names.get(), name);
  }
  if (!spec.sans.empty() &&
      X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, names.get(), 0,
                        X509V3_ADD_DEFAULT) != 1) {
    return OpenSslError("subjectAltName");
  }
  if (X509_sign(cert.get(), ca_key, EVP_sha256()) <= 0) {
    return OpenSslError("signing the certificate");
  }
  return CertificateToPem(cert.get());
}

// Accepts ECDSA keys on P-256 or P-384 whose point is valid.
Status CheckCsrKey(EVP_PKEY* key) {
  char group[64] = {0};
  size_t group_len = 0;
  bool is_ec = EVP_PKEY_is_a(key, "EC") &&
               EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len);
  std::string_view g(group, group_len);
  if (!is_ec || (g != "prime256v1" && g != "secp384r1")) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        StrCat("the CSR's key is ", EVP_PKEY_get0_type_name(key),
               (g.empty() ? std::string() : StrCat(" ", g)),
               "; Cairn certificates need an ECDSA P-256 or P-384 key"));
  }
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (ctx == nullptr || EVP_PKEY_public_check(ctx.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the CSR's public key is not valid");
  }
  return absl::OkStatus();
}

}  // namespace

struct CertificateAuthority::Keys {
  EvpPkeyPtr key;
  X509Ptr cert;
};

CertificateAuthority::CertificateAuthority(std::unique_ptr<Keys> keys,
                                           std::string cert_pem,
                                           std::string fingerprint)
    : keys_(std::move(keys)),
      cert_pem_(std::move(cert_pem)),
      fingerprint_(std::move(fingerprint)) {}

CertificateAuthority::~CertificateAuthority() = default;

StatusOr<std::unique_ptr<CertificateAuthority>> CertificateAuthority::Create(
    const std::string& dir, std::string_view common_name) {
  if (common_name.empty() || common_name.size() > 64) {
    return absl::InvalidArgumentError(
        "CA common name must be 1 to 64 characters");
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, "mkdir", dir);
  }
  const std::string cert_path = JoinPath(dir, kCertFile);
  CAIRN_ASSIGN_OR_RETURN(bool exists, Env::Default()->FileExists(cert_path));
  if (exists) {
    return absl::AlreadyExistsError(
        StrCat(dir, " already holds a CA (", kCertFile,
               "); refusing to replace it, which would orphan every "
               "certificate it issued"));
  }

  ERR_clear_error();
  auto keys = std::make_unique<Keys>();
  CAIRN_ASSIGN_OR_RETURN(keys->key, NewP256Key());
  keys->cert.reset(X509_new());
  X509* cert = keys->cert.get();
  const Clock::time_point now = Clock::now();
  CAIRN_RETURN_IF_ERROR(FillCommonFields(cert, common_name, nullptr,
                                         keys->key.get(), now - kBackdate,
                                         now + kCaCertificateLifetime));
  CAIRN_RETURN_IF_ERROR(AddExtension(cert, cert, NID_basic_constraints,
                                     "critical,CA:TRUE,"
                                     "pathlen:0"));
  CAIRN_RETURN_IF_ERROR(
      AddExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign"));
  CAIRN_RETURN_IF_ERROR(
      AddExtension(cert, cert, NID_subject_key_identifier, "hash"));
  if (X509_sign(cert, keys->key.get(), EVP_sha256()) <= 0) {
    return OpenSslError("self-signing the CA certificate");
  }
  CAIRN_ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPem(keys->key.get()));
  CAIRN_ASSIGN_OR_RETURN(std::string cert_pem, CertificateToPem(cert));
  CAIRN_ASSIGN_OR_RETURN(std::string fingerprint,
                         CertificateFingerprint(cert_pem));

  CAIRN_RETURN_IF_ERROR(
      WritePrivateFileAtomically(JoinPath(dir, kKeyFile), key_pem));
  CAIRN_RETURN_IF_ERROR(WriteFileAtomically(Env::Default(), cert_pem,
                                            cert_path + ".tmp", cert_path));
  return std::unique_ptr<CertificateAuthority>(new CertificateAuthority(
      std::move(keys), std::move(cert_pem), std::move(fingerprint)));
}

StatusOr<std::unique_ptr<CertificateAuthority>> CertificateAuthority::Load(
    const std::string& dir) {
  const std::string cert_path = JoinPath(dir, kCertFile);
  const std::string key_path = JoinPath(dir, kKeyFile);
  std::string cert_pem;
  Status read = Env::Default()->ReadFileToString(cert_path, &cert_pem);
  if (absl::IsNotFound(read)) {
    return absl::NotFoundError(StrCat("no CA in ", dir, " (", cert_path,
                                      " is missing); run cairn-server init"));
  }
  CAIRN_RETURN_IF_ERROR(read);
  CAIRN_ASSIGN_OR_RETURN(std::string key_pem, ReadPrivateFile(key_path));

  ERR_clear_error();
  auto keys = std::make_unique<Keys>();
  BioPtr cert_bio = MemBio(cert_pem);
  keys->cert.reset(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  BioPtr key_bio = MemBio(key_pem);
  keys->key.reset(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (keys->cert == nullptr || keys->key == nullptr) {
    return absl::DataLossError(
        StrCat("CA files in ", dir,
               " are damaged: ", keys->cert == nullptr ? cert_path : key_path,
               " does not parse (", OpenSslErrors(), ")"));
  }
  if (X509_check_private_key(keys->cert.get(), keys->key.get()) != 1) {
    ERR_clear_error();
    return absl::DataLossError(
        StrCat("CA key ", key_path, " does not belong to ", cert_path));
  }
  if (X509_check_ca(keys->cert.get()) < 1) {
    return absl::DataLossError(StrCat(cert_path, " is not a CA certificate"));
  }
  CAIRN_ASSIGN_OR_RETURN(std::string fingerprint,
                         CertificateFingerprint(cert_pem));
  return std::unique_ptr<CertificateAuthority>(new CertificateAuthority(
      std::move(keys), std::move(cert_pem), std::move(fingerprint)));
}

StatusOr<IssuedCertificate> CertificateAuthority::IssueServerCertificate(
    const std::vector<std::string>& dns_names,
    const std::vector<std::string>& ip_addresses,
    const IssueOptions& options) const {
  LeafSpec spec;
  spec.extended_key_usage = "serverAuth";
  spec.sans = {
      {GEN_DNS, "localhost"}, {GEN_IPADD, "127.0.0.1"}, {GEN_IPADD, "::1"}};
  CAIRN_RETURN_IF_ERROR(AddServerNames(dns_names, ip_addresses, &spec));
  spec.common_name = dns_names.empty() ? "localhost" : dns_names[0];
  if (spec.common_name.size() > 64) spec.common_name = "cairn-server";

  ERR_clear_error();
  CAIRN_ASSIGN_OR_RETURN(EvpPkeyPtr key, NewP256Key());
  IssuedCertificate issued;
  CAIRN_ASSIGN_OR_RETURN(issued.key_pem, PrivateKeyToPem(key.get()));
  std::lock_guard<std::mutex> lock(sign_mu_);
  CAIRN_ASSIGN_OR_RETURN(
      issued.cert_pem,
      SignLeaf(keys_->key.get(), keys_->cert.get(), spec, key.get(), options));
  return issued;
}

StatusOr<std::string> CertificateAuthority::SignCsr(
    std::string_view csr_pem, std::string_view identity, Role role,
    const IssueOptions& options) const {
  if (!IsValidIdentity(identity)) {
    return absl::InvalidArgumentError(
        StrCat("identity '", identity,
               "' is not valid: use 1-128 characters of A-Z a-z 0-9 . _ @ -"));
  }
  if (role == Role::kSystem) {
    return absl::InvalidArgumentError(
        "role system is the server's own and is never granted to a peer");
  }
  ERR_clear_error();
  BioPtr bio = MemBio(csr_pem);
  X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (req == nullptr) {
    return absl::InvalidArgumentError(StrCat(
        "the certificate signing request does not parse as a PEM PKCS#10 "
        "request (",
        OpenSslErrors(), ")"));
  }
  EVP_PKEY* public_key = X509_REQ_get0_pubkey(req.get());
  if (public_key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the CSR carries no usable public key");
  }
  CAIRN_RETURN_IF_ERROR(CheckCsrKey(public_key));
  if (X509_REQ_verify(req.get(), public_key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "the CSR's self-signature does not verify: the request was altered "
        "or its signer does not hold the key");
  }

  LeafSpec spec;
  // X.520 limits CN to 64 characters; longer identities live in the URI.
  if (identity.size() <= 64) spec.common_name = std::string(identity);
  spec.sans = {{GEN_URI, RoleUri(role, identity)}};
  spec.extended_key_usage = "clientAuth";
  if (!options.dns_names.empty() || !options.ip_addresses.empty()) {
    CAIRN_RETURN_IF_ERROR(
        AddServerNames(options.dns_names, options.ip_addresses, &spec));
    spec.extended_key_usage = "clientAuth,serverAuth";
  }
  std::lock_guard<std::mutex> lock(sign_mu_);
  return SignLeaf(keys_->key.get(), keys_->cert.get(), spec, public_key,
                  options);
}

}  // namespace cairn
