// The internal CA, mutual TLS and per-RPC identity, over real sockets on
// 127.0.0.1 with real TLS handshakes and a real gRPC Health service.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "cairn/v1/health.grpc.pb.h"
#include "common/coding.h"
#include "common/crypto.h"
#include "common/peer_identity.h"
#include "common/strings.h"
#include "common/tls.h"
#include "server/certificate_authority.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

using std::chrono::system_clock;
using ::testing::HasSubstr;

constexpr auto kRpcTimeout = std::chrono::seconds(10);

// ---- OpenSSL helpers for independent checks ---------------------------------

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr ParsePem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return X509Ptr(cert);
}

// X509_verify_cert of `leaf` against `ca` alone, for `purpose`.
int VerifyAgainst(X509* leaf, X509* ca, int purpose, std::string* error) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx, purpose);
  int rc = X509_verify_cert(ctx);
  if (rc != 1 && error != nullptr)
    *error = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return rc;
}

std::string Der(X509* cert) {
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  std::string out(reinterpret_cast<char*>(der), n);
  OPENSSL_free(der);
  return out;
}

std::string CsrDer(const std::string& csr_pem) {
  BIO* bio = BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size()));
  X509_REQ* req = PEM_read_bio_X509_REQ(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  unsigned char* der = nullptr;
  int n = i2d_X509_REQ(req, &der);
  std::string out(reinterpret_cast<char*>(der), n);
  OPENSSL_free(der);
  X509_REQ_free(req);
  return out;
}

std::string CsrPemFromDer(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size()));
  if (req == nullptr) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, n);
  BIO_free(bio);
  X509_REQ_free(req);
  return out;
}

// A CSR for an RSA key: a key type the CA refuses.
std::string RsaCsrPem() {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  X509_REQ* req = X509_REQ_new();
  X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("rsa"), -1,
                             -1, 0);
  X509_REQ_set_pubkey(req, key);
  X509_REQ_sign(req, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, n);
  BIO_free(bio);
  X509_REQ_free(req);
  EVP_PKEY_free(key);
  return out;
}

// ---- The Health service under test
// -------------------------------------------

// Check requires the agent role and echoes the caller back, as every Cairn
// handler except Enroll does: AuthorizePeer first.
class TestHealthService final : public v1::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext* context,
                     const v1::HealthCheckRequest*,
                     v1::HealthCheckResponse* response) override {
    reached_.fetch_add(1);
    StatusOr<PeerIdentity> peer =
        AuthorizePeer(*context, {Role::kAgent}, "cairn.v1.Health/Check");
    if (!peer.ok()) return ToGrpcStatus(peer.status());
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_peer_ = *peer;
    }
    authorized_.fetch_add(1);
    response->set_status(v1::HealthCheckResponse::SERVING);
    response->set_peer_identity(peer->identity);
    response->set_peer_role(std::string(RoleName(peer->role)));
    return grpc::Status::OK;
  }

  int reached() const { return reached_.load(); }
  int authorized() const { return authorized_.load(); }
  PeerIdentity last_peer() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_peer_;
  }

 private:
  std::atomic<int> reached_{0};
  std::atomic<int> authorized_{0};
  std::mutex mu_;
  PeerIdentity last_peer_;
};

// A gRPC server on 127.0.0.1 with an ephemeral port.
class RunningServer {
 public:
  RunningServer(std::shared_ptr<grpc::ServerCredentials> creds,
                grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", std::move(creds), &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~RunningServer() {
    if (server_ != nullptr)
      server_->Shutdown(system_clock::now() + std::chrono::seconds(5));
  }
  bool ok() const { return server_ != nullptr && port_ > 0; }
  int port() const { return port_; }
  std::string address(const std::string& host = "127.0.0.1") const {
    return StrCat(host, ":", port_);
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// Calls Health.Check with a deadline. When `wait_connected`, first waits for
// the channel to connect (also with a deadline).
grpc::Status CallCheck(const std::shared_ptr<grpc::ChannelCredentials>& creds,
                       const std::string& target,
                       v1::HealthCheckResponse* response,
                       bool wait_connected = false) {
  auto channel = grpc::CreateChannel(target, creds);
  if (wait_connected &&
      !channel->WaitForConnected(system_clock::now() + kRpcTimeout)) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        "channel did not connect");
  }
  auto stub = v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(system_clock::now() + kRpcTimeout);
  return stub->Check(&context, v1::HealthCheckRequest(), response);
}

// Client credentials straight from gRPC, bypassing MakeChannelCredentials'
// own checks, so the tests can prove the SERVER refuses bad certificates.
std::shared_ptr<grpc::ChannelCredentials> RawClientCredentials(
    const TlsFiles& files) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = files.ca_pem;
  options.pem_cert_chain = files.cert_pem;
  options.pem_private_key = files.key_pem;
  return grpc::SslCredentials(options);
}

// An OpenSSL client limited to [min_version, max_version]: did the handshake
// with 127.0.0.1:port succeed, and at which version?
struct ProbeResult {
  bool handshake_ok = false;
  int version = 0;
  std::string error;
};
ProbeResult TlsProbe(int port, int min_version, int max_version) {
  ProbeResult result;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    result.error = "connect failed";
    ::close(fd);
    return result;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, min_version);
  SSL_CTX_set_max_proto_version(ctx, max_version);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  ERR_clear_error();
  if (SSL_connect(ssl) == 1) {
    result.handshake_ok = true;
    result.version = SSL_version(ssl);
    SSL_shutdown(ssl);
  } else {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    result.error = buf;
    ERR_clear_error();
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return result;
}

// ---- Fixture
// -------------------------------------------------------------------

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = CertificateAuthority::Create(dir_.Sub("ca"), "Cairn Test CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
  }

  TlsFiles ServerFiles() {
    auto issued = ca_->IssueServerCertificate({"backup.example"}, {});
    EXPECT_TRUE(issued.ok()) << issued.status();
    return {ca_->CertificatePem(), issued->cert_pem, issued->key_pem};
  }

  // Key + certificate for `identity`/`role` from `ca` (default: ours).
  TlsFiles ClientFiles(const std::string& identity, Role role,
                       const IssueOptions& options = {},
                       CertificateAuthority* ca = nullptr) {
    if (ca == nullptr) ca = ca_.get();
    auto key_and_csr = CreateKeyAndCsr(identity);
    EXPECT_TRUE(key_and_csr.ok()) << key_and_csr.status();
    auto cert = ca->SignCsr(key_and_csr->csr_pem, identity, role, options);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return {ca_->CertificatePem(), *cert, key_and_csr->key_pem};
  }

  std::unique_ptr<RunningServer> StartServer(grpc::Service* service) {
    auto creds = MakeServerCredentials(ServerFiles());
    EXPECT_TRUE(creds.ok()) << creds.status();
    auto server = std::make_unique<RunningServer>(*creds, service);
    EXPECT_TRUE(server->ok());
    return server;
  }

  testing::ScratchDir dir_;
  std::unique_ptr<CertificateAuthority> ca_;
};

// ---- Certificate authority
// -----------------------------------------------------

TEST_F(SecurityTest, CaCreateLoadRoundTripWithStableFingerprint) {
  const std::string fp = ca_->Fingerprint();
  ASSERT_EQ(fp.size(), 64u);
  // Independently: SHA-256 of the DER certificate.
  X509Ptr cert = ParsePem(ca_->CertificatePem());
  ASSERT_NE(cert, nullptr);
  crypto::Digest d = crypto::Sha256(Der(cert.get()));
  EXPECT_EQ(fp, HexEncode(std::string_view(
                    reinterpret_cast<const char*>(d.data()), d.size())));

  auto loaded = CertificateAuthority::Load(dir_.Sub("ca"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->Fingerprint(), fp);
  EXPECT_EQ((*loaded)->CertificatePem(), ca_->CertificatePem());

  // CA properties: CA:TRUE, self-signed, about ten years.
  EXPECT_GE(X509_check_ca(cert.get()), 1);
  EXPECT_EQ(VerifyAgainst(cert.get(), cert.get(), X509_PURPOSE_ANY, nullptr),
            1);
  int days = 0, secs = 0;
  ASSERT_TRUE(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert.get()),
                             X509_get0_notAfter(cert.get())));
  EXPECT_GE(days, 3650);

  struct stat st;
  ASSERT_EQ(::stat(dir_.Sub("ca/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SecurityTest, CaCreateRefusesExistingCa) {
  auto again = CertificateAuthority::Create(dir_.Sub("ca"), "Another");
  EXPECT_TRUE(absl::IsAlreadyExists(again.status())) << again.status();
}

TEST_F(SecurityTest, CaLoadErrors) {
  EXPECT_TRUE(absl::IsNotFound(
      CertificateAuthority::Load(dir_.Sub("nothing")).status()));
  ASSERT_EQ(::chmod(dir_.Sub("ca/ca.key").c_str(), 0640), 0);
  auto loaded = CertificateAuthority::Load(dir_.Sub("ca"));
  EXPECT_TRUE(absl::IsFailedPrecondition(loaded.status())) << loaded.status();
  EXPECT_THAT(ToStd(loaded.status().message()), HasSubstr("chmod 600"));
}

TEST_F(SecurityTest, CaLoadRefusesKeyOfAnotherCa) {
  auto other = CertificateAuthority::Create(dir_.Sub("other"), "Other CA");
  ASSERT_TRUE(other.ok());
  testing::WriteFileOrDie(dir_.Sub("ca/ca.key"),
                          testing::ReadFileOrDie(dir_.Sub("other/ca.key")));
  ASSERT_EQ(::chmod(dir_.Sub("ca/ca.key").c_str(), 0600), 0);
  auto loaded = CertificateAuthority::Load(dir_.Sub("ca"));
  EXPECT_TRUE(absl::IsDataLoss(loaded.status())) << loaded.status();
}

TEST_F(SecurityTest, ServerCertificateVerifiesAndNamesTheServer) {
  auto issued = ca_->IssueServerCertificate({"backup.example"}, {"10.1.2.3"});
  ASSERT_TRUE(issued.ok()) << issued.status();
  X509Ptr leaf = ParsePem(issued->cert_pem);
  X509Ptr ca = ParsePem(ca_->CertificatePem());
  std::string error;
  EXPECT_EQ(
      VerifyAgainst(leaf.get(), ca.get(), X509_PURPOSE_SSL_SERVER, &error), 1)
      << error;
  EXPECT_EQ(X509_check_host(leaf.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(leaf.get(), "backup.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf.get(), "10.1.2.3", 0), 1);
  EXPECT_NE(X509_check_host(leaf.get(), "evil.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  // A server certificate identifies no caller.
  auto peer = PeerIdentityFromCertificatePem(issued->cert_pem);
  EXPECT_TRUE(absl::IsPermissionDenied(peer.status())) << peer.status();

  EXPECT_TRUE(absl::IsInvalidArgument(
      ca_->IssueServerCertificate({"bad name,DNS:evil"}, {}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ca_->IssueServerCertificate({}, {"300.1.1.1"}).status()));
}

TEST_F(SecurityTest, SignCsrSetsSubjectRoleAndValidityFromTheCaOnly) {
  // The CSR asks for a different name; the CA ignores it.
  auto key_and_csr = CreateKeyAndCsr("evil-name");
  ASSERT_TRUE(key_and_csr.ok()) << key_and_csr.status();
  auto cert_pem = ca_->SignCsr(key_and_csr->csr_pem, "pc-17", Role::kAgent);
  ASSERT_TRUE(cert_pem.ok()) << cert_pem.status();

  X509Ptr leaf = ParsePem(*cert_pem);
  X509Ptr ca = ParsePem(ca_->CertificatePem());
  std::string error;
  EXPECT_EQ(
      VerifyAgainst(leaf.get(), ca.get(), X509_PURPOSE_SSL_CLIENT, &error), 1)
      << error;
  char cn[128] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(leaf.get()), NID_commonName,
                            cn, sizeof(cn));
  EXPECT_STREQ(cn, "pc-17");
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);

  auto peer = PeerIdentityFromCertificatePem(*cert_pem);
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->identity, "pc-17");
  EXPECT_EQ(peer->role, Role::kAgent);
  EXPECT_EQ(peer->cert_fingerprint, *CertificateFingerprint(*cert_pem));

  // About one year, a 16-byte positive serial.
  int days = 0, secs = 0;
  ASSERT_TRUE(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf.get()),
                             X509_get0_notAfter(leaf.get())));
  EXPECT_EQ(days, 365);
  const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf.get());
  EXPECT_EQ(ASN1_STRING_length(serial), 16);
  EXPECT_EQ(ASN1_STRING_type(serial), V_ASN1_INTEGER);  // not negative

  // Two certificates never share a serial.
  auto second = ca_->SignCsr(key_and_csr->csr_pem, "pc-17", Role::kAgent);
  ASSERT_TRUE(second.ok());
  X509Ptr leaf2 = ParsePem(*second);
  EXPECT_NE(ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(leaf2.get())), 0);
}

TEST_F(SecurityTest, SignCsrRefusesTamperedRequests) {
  auto key_and_csr = CreateKeyAndCsr("tamper-me");
  ASSERT_TRUE(key_and_csr.ok());
  const std::string der = CsrDer(key_and_csr->csr_pem);

  // Signed content altered: the CN "tamper-me" becomes "tamper-mf".
  std::string content = der;
  size_t at = content.find("tamper-me");
  ASSERT_NE(at, std::string::npos);
  content[at + 8] = 'f';
  auto refused = ca_->SignCsr(CsrPemFromDer(content), "pc-1", Role::kAgent);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_THAT(ToStd(refused.status().message()), HasSubstr("self-signature"));

  // Signature altered: the last byte of the ECDSA signature.
  std::string signature = der;
  signature.back() ^= 0x01;
  std::string pem = CsrPemFromDer(signature);
  ASSERT_FALSE(pem.empty());
  refused = ca_->SignCsr(pem, "pc-1", Role::kAgent);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();

  // Not a CSR at all.
  refused = ca_->SignCsr(
      "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
      "-----END CERTIFICATE REQUEST-----\n",
      "pc-1", Role::kAgent);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
}

TEST_F(SecurityTest, SignCsrRefusesUnsupportedKeysIdentitiesAndRoles) {
  auto refused = ca_->SignCsr(RsaCsrPem(), "pc-1", Role::kAgent);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_THAT(ToStd(refused.status().message()), HasSubstr("P-256"));

  auto key_and_csr = CreateKeyAndCsr("pc-1");
  ASSERT_TRUE(key_and_csr.ok());
  for (const char* bad : {"", "a/b", "x y", ".hidden", "cairn://role/admin"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(
        ca_->SignCsr(key_and_csr->csr_pem, bad, Role::kAgent).status()))
        << bad;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      ca_->SignCsr(key_and_csr->csr_pem, "pc-1", Role::kSystem).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(CreateKeyAndCsr("a b").status()));

  // Long identities (catalog ids go to 128) live in the URI, not the CN.
  std::string long_id(100, 'x');
  auto cert = ca_->SignCsr(key_and_csr->csr_pem, long_id, Role::kMedia);
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto peer = PeerIdentityFromCertificatePem(*cert);
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->identity, long_id);
  EXPECT_EQ(peer->role, Role::kMedia);
}

TEST_F(SecurityTest, SignCsrWithServerNamesServesToo) {
  IssueOptions options;
  options.dns_names = {"media-1.example"};
  TlsFiles media = ClientFiles("media-1", Role::kMedia, options);
  X509Ptr leaf = ParsePem(media.cert_pem);
  X509Ptr ca = ParsePem(ca_->CertificatePem());
  EXPECT_EQ(
      VerifyAgainst(leaf.get(), ca.get(), X509_PURPOSE_SSL_SERVER, nullptr), 1);
  EXPECT_EQ(
      VerifyAgainst(leaf.get(), ca.get(), X509_PURPOSE_SSL_CLIENT, nullptr), 1);
  EXPECT_EQ(X509_check_host(leaf.get(), "media-1.example", 0, 0, nullptr), 1);
  EXPECT_TRUE(PeerIdentityFromCertificatePem(media.cert_pem).ok());
}

// ---- Roles and fingerprints
// ----------------------------------------------------

TEST(RoleTest, NamesRoundTrip) {
  for (Role r : {Role::kAdmin, Role::kOperator, Role::kHelpdesk, Role::kAuditor,
                 Role::kAgent, Role::kMedia, Role::kSystem}) {
    auto parsed = ParseRole(RoleName(r));
    ASSERT_TRUE(parsed.ok()) << RoleName(r);
    EXPECT_EQ(*parsed, r);
  }
  EXPECT_EQ(RoleName(Role::kHelpdesk), "helpdesk");
  auto bad = ParseRole("root");
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_THAT(ToStd(bad.status().message()), HasSubstr("admin"));
}

TEST(RoleTest, RequireRoleNamesTheRoleAndTheCall) {
  PeerIdentity agent{"pc-17", Role::kAgent, std::string(64, 'a')};
  EXPECT_TRUE(RequireRole(agent, {Role::kAgent, Role::kMedia}, "X").ok());
  Status denied =
      RequireRole(agent, {Role::kAdmin, Role::kOperator}, "cairn.v1.Admin/Y");
  EXPECT_TRUE(absl::IsPermissionDenied(denied));
  EXPECT_THAT(ToStd(denied.message()),
              HasSubstr("role agent may not call cairn.v1.Admin/Y"));
}

TEST(FingerprintTest, NormalizeAcceptsCommonForms) {
  const std::string fp(
      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  EXPECT_EQ(*NormalizeFingerprint(fp), fp);
  EXPECT_EQ(*NormalizeFingerprint(
                "SHA256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"),
            fp);
  EXPECT_TRUE(
      absl::IsInvalidArgument(NormalizeFingerprint(fp.substr(0, 62)).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      NormalizeFingerprint(
          "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
          .status()));
}

// ---- Credentials
// ----------------------------------------------------------------

TEST_F(SecurityTest, CredentialFactoriesCheckTheirMaterial) {
  TlsFiles server = ServerFiles();
  EXPECT_TRUE(MakeServerCredentials(server).ok());

  TlsFiles wrong_key = server;
  wrong_key.key_pem = ClientFiles("pc-1", Role::kAgent).key_pem;
  auto creds = MakeServerCredentials(wrong_key);
  EXPECT_TRUE(absl::IsInvalidArgument(creds.status())) << creds.status();

  auto other = CertificateAuthority::Create(dir_.Sub("other"), "Other CA");
  ASSERT_TRUE(other.ok());
  TlsFiles foreign = ClientFiles("pc-1", Role::kAgent, {}, other->get());
  auto client = MakeChannelCredentials(foreign);
  EXPECT_TRUE(absl::IsFailedPrecondition(client.status())) << client.status();

  TlsFiles garbage = server;
  garbage.ca_pem = "not a certificate";
  EXPECT_TRUE(absl::IsInvalidArgument(MakeServerCredentials(garbage).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      MakeEnrollmentChannelCredentials("not a certificate").status()));
}

TEST_F(SecurityTest, TlsFilesRoundTripWithPrivateKey) {
  TlsFiles files = ClientFiles("pc-9", Role::kAgent);
  ASSERT_TRUE(WriteTlsFiles(dir_.Sub("agent"), files).ok());
  struct stat st;
  ASSERT_EQ(::stat(dir_.Sub("agent/key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto read = ReadTlsFiles(dir_.Sub("agent"));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->ca_pem, files.ca_pem);
  EXPECT_EQ(read->cert_pem, files.cert_pem);
  EXPECT_EQ(read->key_pem, files.key_pem);
}

// ---- Mutual TLS over real sockets
// ---------------------------------------------

TEST_F(SecurityTest, AgentCertificateSucceedsAndHandlerSeesIdentity) {
  TestHealthService service;
  auto server = StartServer(&service);
  TlsFiles agent = ClientFiles("pc-17", Role::kAgent);
  auto creds = MakeChannelCredentials(agent);
  ASSERT_TRUE(creds.ok()) << creds.status();

  for (const char* host : {"127.0.0.1", "localhost"}) {
    v1::HealthCheckResponse response;
    grpc::Status status =
        CallCheck(*creds, server->address(host), &response, true);
    ASSERT_TRUE(status.ok()) << host << ": " << status.error_message();
    EXPECT_EQ(response.status(), v1::HealthCheckResponse::SERVING);
    EXPECT_EQ(response.peer_identity(), "pc-17");
    EXPECT_EQ(response.peer_role(), "agent");
  }
  PeerIdentity seen = service.last_peer();
  EXPECT_EQ(seen.identity, "pc-17");
  EXPECT_EQ(seen.role, Role::kAgent);
  EXPECT_EQ(seen.cert_fingerprint, *CertificateFingerprint(agent.cert_pem));
}

TEST_F(SecurityTest, NoClientCertificateIsUnauthenticated) {
  TestHealthService service;
  auto server = StartServer(&service);
  // The enrollment channel: verifies the server, presents no certificate.
  auto creds = MakeEnrollmentChannelCredentials(ca_->CertificatePem());
  ASSERT_TRUE(creds.ok());
  v1::HealthCheckResponse response;
  grpc::Status status =
      CallCheck(*creds, server->address(), &response, /*wait_connected=*/true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("client certificate"));
  // The connection was accepted (enrollment must be reachable) but the
  // cert-required handler refused.
  EXPECT_EQ(service.reached(), 1);
  EXPECT_EQ(service.authorized(), 0);
}

TEST_F(SecurityTest, CertificateFromAnotherCaIsRefusedAtTheHandshake) {
  TestHealthService service;
  auto server = StartServer(&service);
  auto other = CertificateAuthority::Create(dir_.Sub("other"), "Other CA");
  ASSERT_TRUE(other.ok());
  // Trusts our CA for the server, but presents a certificate of another CA.
  TlsFiles foreign = ClientFiles("pc-17", Role::kAgent, {}, other->get());
  v1::HealthCheckResponse response;
  grpc::Status status =
      CallCheck(RawClientCredentials(foreign), server->address(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
  EXPECT_EQ(service.reached(), 0);
}

TEST_F(SecurityTest, WrongRoleIsPermissionDenied) {
  TestHealthService service;
  auto server = StartServer(&service);
  auto creds = MakeChannelCredentials(ClientFiles("media-1", Role::kMedia));
  ASSERT_TRUE(creds.ok());
  v1::HealthCheckResponse response;
  grpc::Status status = CallCheck(*creds, server->address(), &response, true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  EXPECT_THAT(status.error_message(),
              HasSubstr("role media may not call cairn.v1.Health/Check"));
  EXPECT_EQ(service.authorized(), 0);
}

TEST_F(SecurityTest, ExpiredCertificateIsRefused) {
  TestHealthService service;
  auto server = StartServer(&service);
  IssueOptions past;
  past.not_before = system_clock::now() - std::chrono::hours(48);
  past.not_after = system_clock::now() - std::chrono::hours(24);
  TlsFiles expired = ClientFiles("pc-17", Role::kAgent, past);

  // Our own factory will not even build such credentials...
  auto creds = MakeChannelCredentials(expired);
  EXPECT_TRUE(absl::IsFailedPrecondition(creds.status())) << creds.status();
  EXPECT_THAT(ToStd(creds.status().message()), HasSubstr("expired"));
  // ...and the server refuses it at the handshake.
  v1::HealthCheckResponse response;
  grpc::Status status =
      CallCheck(RawClientCredentials(expired), server->address(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
  EXPECT_EQ(service.reached(), 0);
}

TEST_F(SecurityTest, ServersSpeakOnlyTls13) {
  TestHealthService service;
  auto server = StartServer(&service);

  // A TLS 1.2-only client is refused (the server logs "unsupported
  // protocol" and closes; the client sees the handshake fail).
  ProbeResult tls12 = TlsProbe(server->port(), TLS1_2_VERSION, TLS1_2_VERSION);
  EXPECT_FALSE(tls12.handshake_ok) << "a TLS 1.2-only client got in";

  // A client offering 1.2 and 1.3 gets 1.3.
  ProbeResult any = TlsProbe(server->port(), TLS1_2_VERSION, TLS1_3_VERSION);
  ASSERT_TRUE(any.handshake_ok) << any.error;
  EXPECT_EQ(any.version, TLS1_3_VERSION);

  // Control: gRPC's stock SslServerCredentials with the same material do
  // accept TLS 1.2, so the refusal above is MakeServerCredentials' doing and
  // the probe itself works.
  TlsFiles files = ServerFiles();
  grpc::SslServerCredentialsOptions stock(
      GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  stock.pem_root_certs = files.ca_pem;
  stock.pem_key_cert_pairs.push_back({files.key_pem, files.cert_pem});
  TestHealthService stock_service;
  RunningServer stock_server(grpc::SslServerCredentials(stock), &stock_service);
  ASSERT_TRUE(stock_server.ok());
  ProbeResult stock12 =
      TlsProbe(stock_server.port(), TLS1_2_VERSION, TLS1_2_VERSION);
  ASSERT_TRUE(stock12.handshake_ok) << stock12.error;
  EXPECT_EQ(stock12.version, TLS1_2_VERSION);
}

TEST_F(SecurityTest, ClientsRefuseAServerTheyCannotVerify) {
  auto creds = MakeChannelCredentials(ClientFiles("pc-17", Role::kAgent));
  ASSERT_TRUE(creds.ok());

  // A genuine server reached under a name its certificate does not carry.
  TestHealthService service;
  auto server = StartServer(&service);
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("evil.example");
  auto channel = grpc::CreateCustomChannel(server->address(), *creds, args);
  auto stub = v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(system_clock::now() + kRpcTimeout);
  v1::HealthCheckResponse response;
  grpc::Status status =
      stub->Check(&context, v1::HealthCheckRequest(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();

  // An impostor: a well-formed server whose certificate comes from another
  // CA. The pinned client refuses it, and enrollment will not pin its CA.
  auto other = CertificateAuthority::Create(dir_.Sub("other"), "Impostor CA");
  ASSERT_TRUE(other.ok());
  auto issued = (*other)->IssueServerCertificate({}, {});
  ASSERT_TRUE(issued.ok());
  auto impostor_creds = MakeServerCredentials(
      {(*other)->CertificatePem(), issued->cert_pem, issued->key_pem});
  ASSERT_TRUE(impostor_creds.ok()) << impostor_creds.status();
  TestHealthService impostor_service;
  RunningServer impostor(*impostor_creds, &impostor_service);
  ASSERT_TRUE(impostor.ok());
  status = CallCheck(*creds, impostor.address(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
  EXPECT_EQ(impostor_service.reached(), 0);
  auto pinned =
      FetchAndPinCaCertificate(impostor.address(), ca_->Fingerprint());
  EXPECT_TRUE(absl::IsPermissionDenied(pinned.status())) << pinned.status();
  EXPECT_THAT(ToStd(pinned.status().message()),
              HasSubstr(StrCat("server presented ", (*other)->Fingerprint())));
}

// ---- Enrollment, client side
// ---------------------------------------------------

TEST_F(SecurityTest, FetchAndPinCaCertificate) {
  TestHealthService service;
  auto server = StartServer(&service);

  auto pinned = FetchAndPinCaCertificate(server->address(), ca_->Fingerprint());
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(*pinned, ca_->CertificatePem());

  // As an administrator might paste it, by host name.
  std::string pretty = "SHA256:";
  for (size_t i = 0; i < 64; i += 2) {
    if (i > 0) pretty += ':';
    pretty += static_cast<char>(std::toupper(ca_->Fingerprint()[i]));
    pretty += static_cast<char>(std::toupper(ca_->Fingerprint()[i + 1]));
  }
  pinned = FetchAndPinCaCertificate(server->address("localhost"), pretty);
  ASSERT_TRUE(pinned.ok()) << pinned.status();

  const std::string wrong(64, 'a');
  auto refused = FetchAndPinCaCertificate(server->address(), wrong);
  EXPECT_TRUE(absl::IsPermissionDenied(refused.status())) << refused.status();
  EXPECT_THAT(ToStd(refused.status().message()),
              HasSubstr(StrCat("CA fingerprint mismatch: expected ", wrong,
                               ", server presented ", ca_->Fingerprint())));

  // The fingerprint of the server's own (leaf) certificate is not a CA.
  std::string leaf_fp;
  {
    TlsFiles files = ServerFiles();
    leaf_fp = *CertificateFingerprint(files.cert_pem);
  }
  EXPECT_FALSE(FetchAndPinCaCertificate(server->address(), leaf_fp).ok());

  EXPECT_TRUE(absl::IsInvalidArgument(
      FetchAndPinCaCertificate(server->address(), "abc").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      FetchAndPinCaCertificate("no-port", ca_->Fingerprint()).status()));
}

TEST_F(SecurityTest, FetchAndPinUnreachableServerIsUnavailable) {
  // Port 1 on loopback: nothing listens there in a test environment.
  auto refused = FetchAndPinCaCertificate("127.0.0.1:1", ca_->Fingerprint(),
                                          std::chrono::seconds(5));
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
}

TEST_F(SecurityTest, EnrollmentFlowEndToEnd) {
  TestHealthService service;
  auto server = StartServer(&service);

  // 1. Pin the CA by fingerprint. 2. Key + CSR. 3. The server signs (the
  // Enroll RPC's job). 4. Save, reload, call with mutual TLS.
  auto ca_pem = FetchAndPinCaCertificate(server->address(), ca_->Fingerprint());
  ASSERT_TRUE(ca_pem.ok()) << ca_pem.status();
  auto key_and_csr = CreateKeyAndCsr("laptop-3");
  ASSERT_TRUE(key_and_csr.ok());
  auto cert = ca_->SignCsr(key_and_csr->csr_pem, "laptop-3", Role::kAgent);
  ASSERT_TRUE(cert.ok()) << cert.status();
  ASSERT_TRUE(
      WriteTlsFiles(dir_.Sub("agent"), {*ca_pem, *cert, key_and_csr->key_pem})
          .ok());
  auto files = ReadTlsFiles(dir_.Sub("agent"));
  ASSERT_TRUE(files.ok()) << files.status();
  auto creds = MakeChannelCredentials(*files);
  ASSERT_TRUE(creds.ok()) << creds.status();
  v1::HealthCheckResponse response;
  grpc::Status status = CallCheck(*creds, server->address(), &response, true);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.peer_identity(), "laptop-3");
}

}  // namespace
}  // namespace cairn
