#include "common/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/coding.h"
#include "common/env.h"
#include "common/openssl_util.h"
#include "common/peer_identity.h"
#include "common/strings.h"

// gRPC 1.51 keeps the minimum TLS version of SSL server credentials in
// grpc_ssl_server_credentials (src/core/lib/security/credentials/ssl/
// ssl_credentials.h) and exports its setter from libgrpc, but ships no header
// for it and no public API that reaches it. This declaration matches the
// exported, non-virtual member function; only `this` is passed, so the
// class's layout does not matter here. If a future gRPC drops the symbol the
// link fails loudly; switch to TlsCredentialsOptions::set_min_tls_version
// then.
class grpc_ssl_server_credentials {
 public:
  void set_min_tls_version(grpc_tls_version min_tls_version);
};

namespace cairn {
namespace {

using SslCtxPtr = std::unique_ptr<SSL_CTX, OpenSslDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OpenSslDeleter<SSL_free>>;

// Every certificate in `pem`, in order. InvalidArgument if there is none or
// one does not parse.
StatusOr<std::vector<X509Ptr>> ParseCertificates(std::string_view pem,
                                                 std::string_view what) {
  ERR_clear_error();
  std::vector<X509Ptr> certs;
  BioPtr bio = MemBio(pem);
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (cert == nullptr) break;
    certs.push_back(std::move(cert));
  }
  unsigned long err = ERR_peek_last_error();
  bool clean_end = ERR_GET_LIB(err) == ERR_LIB_PEM &&
                   ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  if (certs.empty() || !clean_end) {
    std::string detail = OpenSslErrors();
    return absl::InvalidArgumentError(
        StrCat(what, " holds no valid PEM certificate (", detail, ")"));
  }
  ERR_clear_error();  // the expected "no start line" at the end
  return certs;
}

StatusOr<EvpPkeyPtr> ParsePrivateKey(std::string_view pem,
                                     std::string_view what) {
  BioPtr bio = MemBio(pem);
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        StrCat(what, " is not a valid unencrypted PEM private key (",
               OpenSslErrors(), ")"));
  }
  return key;
}

// Verifies `leaf` (with `untrusted` intermediates) against the certificates
// of `anchors` for `purpose` (X509_PURPOSE_SSL_SERVER/CLIENT), and, when
// `host` is non-empty, that the leaf names that DNS name or IP address.
// Returns the verifier's reason on failure.
Status VerifyCertificate(X509* leaf, const std::vector<X509*>& anchors,
                         STACK_OF(X509) * untrusted, int purpose,
                         std::string_view host) {
  X509StorePtr store(X509_STORE_new());
  for (X509* anchor : anchors) X509_STORE_add_cert(store.get(), anchor);
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted)) {
    return absl::InternalError(
        StrCat("X509_STORE_CTX_init: ", OpenSslErrors()));
  }
  X509_STORE_CTX_set_purpose(ctx.get(), purpose);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  if (!host.empty()) {
    std::string h(host);
    if (!X509_VERIFY_PARAM_set1_ip_asc(param, h.c_str())) {
      ERR_clear_error();  // not an IP literal: a DNS name
      X509_VERIFY_PARAM_set1_host(param, h.c_str(), h.size());
    }
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return absl::FailedPreconditionError(X509_verify_cert_error_string(err));
  }
  return absl::OkStatus();
}

}  // namespace

Status VerifyCertificateAgainstCa(std::string_view cert_pem,
                                  std::string_view ca_pem) {
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> cas,
                         ParseCertificates(ca_pem, "the CA certificate"));
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain,
                         ParseCertificates(cert_pem, "the certificate"));
  std::vector<X509*> anchors;
  for (auto& ca : cas) anchors.push_back(ca.get());
  Status s = VerifyCertificate(chain[0].get(), anchors, nullptr,
                               X509_PURPOSE_SSL_SERVER, "");
  if (!s.ok()) {
    return absl::FailedPreconditionError(
        StrCat("the certificate does not verify against the CA: ",
               ToStd(s.message())));
  }
  return absl::OkStatus();
}

namespace {

// The checks both credential factories share: everything parses, the key
// belongs to the certificate, and the certificate verifies against the CA
// for `purpose`. Returns the certificate chain to present (leaf first, CA
// appended when `append_ca` and not already present).
StatusOr<std::string> CheckEndpointFiles(const TlsFiles& files, int purpose,
                                         bool append_ca) {
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> cas,
                         ParseCertificates(files.ca_pem, "the CA file"));
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain,
                         ParseCertificates(files.cert_pem, "the certificate"));
  CAIRN_ASSIGN_OR_RETURN(EvpPkeyPtr key,
                         ParsePrivateKey(files.key_pem, "the private key"));
  if (X509_check_private_key(chain[0].get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "the private key does not belong to the certificate");
  }
  std::vector<X509*> anchors;
  for (auto& ca : cas) anchors.push_back(ca.get());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i)
    sk_X509_push(untrusted, chain[i].get());
  Status verified =
      VerifyCertificate(chain[0].get(), anchors, untrusted, purpose, "");
  sk_X509_free(untrusted);
  if (!verified.ok()) {
    return absl::FailedPreconditionError(
        StrCat("this endpoint's certificate does not verify against the CA: ",
               ToStd(verified.message())));
  }
  std::string presented = files.cert_pem;
  if (append_ca) {
    std::string ca_fp = Sha256Fingerprint(cas[0].get());
    bool has_ca = false;
    for (auto& c : chain)
      has_ca = has_ca || Sha256Fingerprint(c.get()) == ca_fp;
    if (!has_ca) {
      if (!presented.empty() && presented.back() != '\n') presented += '\n';
      CAIRN_ASSIGN_OR_RETURN(std::string ca_pem,
                             CertificateToPem(cas[0].get()));
      presented += ca_pem;
    }
  }
  return presented;
}

// grpc::ServerCredentials around C-core SSL server credentials, so that the
// minimum TLS version can be set on them (see the top of this file).
class Tls13ServerCredentials final : public grpc::ServerCredentials {
 public:
  // REQUIRES: called once, before the credentials are used.
  void Adopt(grpc_server_credentials* creds) { creds_ = creds; }
  ~Tls13ServerCredentials() override {
    if (creds_ != nullptr) grpc_server_credentials_release(creds_);
  }

  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {
    // Silently ignoring an authorization hook would be a security bug.
    std::fprintf(stderr,
                 "cairn: SetAuthMetadataProcessor is not supported on Cairn "
                 "server credentials; authorize in the handler "
                 "(common/peer_identity.h)\n");
    std::abort();
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), creds_);
  }

  grpc_server_credentials* creds_ = nullptr;
};

Status MakeDir0700(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return ErrnoToStatus(errno, "mkdir", dir);
  return absl::OkStatus();
}

// Waits until `fd` is ready for `events` or `deadline` passes.
Status WaitFd(int fd, short events,
              std::chrono::steady_clock::time_point deadline,
              std::string_view what) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError(StrCat("timed out during ", what));
    }
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc > 0) return absl::OkStatus();
    if (rc < 0 && errno != EINTR) return ErrnoToStatus(errno, "poll", what);
  }
}

// A non-blocking TCP connection to host:port within `deadline`.
StatusOr<int> ConnectTcp(const std::string& host, const std::string& port,
                         std::chrono::steady_clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int gai = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) {
    return absl::UnavailableError(
        StrCat("cannot resolve ", host, ": ", ::gai_strerror(gai)));
  }
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 ai->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      Status waited = WaitFd(fd, POLLOUT, deadline, "connect");
      if (!waited.ok()) {
        ::close(fd);
        ::freeaddrinfo(res);
        return waited;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc == 0) {
      ::freeaddrinfo(res);
      return fd;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return absl::UnavailableError(
      StrCat("cannot connect to ", host, ":", port, ": ", last_error));
}

}  // namespace

// ---- Files -----------------------------------------------------------------

StatusOr<TlsFiles> ReadTlsFiles(const std::string& dir) {
  TlsFiles files;
  Env* env = Env::Default();
  CAIRN_RETURN_IF_ERROR(
      env->ReadFileToString(JoinPath(dir, kTlsCaFile), &files.ca_pem));
  CAIRN_RETURN_IF_ERROR(
      env->ReadFileToString(JoinPath(dir, kTlsCertFile), &files.cert_pem));
  CAIRN_ASSIGN_OR_RETURN(files.key_pem,
                         ReadPrivateFile(JoinPath(dir, kTlsKeyFile)));
  return files;
}

Status WriteTlsFiles(const std::string& dir, const TlsFiles& files) {
  CAIRN_RETURN_IF_ERROR(MakeDir0700(dir));
  CAIRN_RETURN_IF_ERROR(
      WritePrivateFileAtomically(JoinPath(dir, kTlsKeyFile), files.key_pem));
  Env* env = Env::Default();
  std::string ca = JoinPath(dir, kTlsCaFile);
  CAIRN_RETURN_IF_ERROR(
      WriteFileAtomically(env, files.ca_pem, ca + ".tmp", ca));
  std::string cert = JoinPath(dir, kTlsCertFile);
  return WriteFileAtomically(env, files.cert_pem, cert + ".tmp", cert);
}

// ---- Fingerprints ----------------------------------------------------------

StatusOr<std::string> CertificateFingerprint(std::string_view cert_pem) {
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs,
                         ParseCertificates(cert_pem, "the certificate"));
  return Sha256Fingerprint(certs[0].get());
}

StatusOr<std::string> NormalizeFingerprint(std::string_view text) {
  std::string_view s = text;
  for (std::string_view prefix : {"sha256:", "SHA256:", "SHA-256:"}) {
    if (s.substr(0, prefix.size()) == prefix) s.remove_prefix(prefix.size());
  }
  std::string hex;
  for (char c : s) {
    if (c == ':' || c == ' ') continue;
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError(StrCat(
          "CA fingerprint '", text, "' is not hex (expected the 64 hex digits ",
          "of a SHA-256 fingerprint, as `cairn-server init` prints)"));
    }
    hex.push_back(c);
  }
  if (hex.size() != 64) {
    return absl::InvalidArgumentError(
        StrCat("CA fingerprint '", text, "' has ", hex.size(),
               " hex digits; a SHA-256 fingerprint has 64"));
  }
  return hex;
}

// ---- gRPC credentials ------------------------------------------------------

StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files) {
  CAIRN_ASSIGN_OR_RETURN(
      std::string chain,
      CheckEndpointFiles(files, X509_PURPOSE_SSL_SERVER, /*append_ca=*/true));
  // Constructed first: its base class initializes the gRPC library, which
  // the C calls below need.
  auto creds = std::make_shared<Tls13ServerCredentials>();
  grpc_ssl_pem_key_cert_pair pair{files.key_pem.c_str(), chain.c_str()};
  grpc_ssl_server_certificate_config* config =
      grpc_ssl_server_certificate_config_create(files.ca_pem.c_str(), &pair, 1);
  // Takes ownership of `config`.
  grpc_ssl_server_credentials_options* options =
      grpc_ssl_server_credentials_create_options_using_config(
          GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY, config);
  // Takes ownership of `options`.
  grpc_server_credentials* c_creds =
      grpc_ssl_server_credentials_create_with_options(options);
  if (c_creds == nullptr) {
    return absl::InternalError("gRPC refused the SSL server configuration");
  }
  reinterpret_cast<grpc_ssl_server_credentials*>(c_creds)->set_min_tls_version(
      grpc_tls_version::TLS1_3);
  creds->Adopt(c_creds);
  return std::shared_ptr<grpc::ServerCredentials>(std::move(creds));
}

StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files) {
  CAIRN_RETURN_IF_ERROR(
      CheckEndpointFiles(files, X509_PURPOSE_SSL_CLIENT, /*append_ca=*/false)
          .status());
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = files.ca_pem;
  options.pem_private_key = files.key_pem;
  options.pem_cert_chain = files.cert_pem;
  auto creds = grpc::SslCredentials(options);
  if (creds == nullptr) {
    return absl::InternalError("gRPC refused the SSL client configuration");
  }
  return creds;
}

StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeEnrollmentChannelCredentials(std::string_view ca_pem) {
  CAIRN_RETURN_IF_ERROR(ParseCertificates(ca_pem, "the CA file").status());
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = std::string(ca_pem);
  auto creds = grpc::SslCredentials(options);
  if (creds == nullptr) {
    return absl::InternalError("gRPC refused the SSL client configuration");
  }
  return creds;
}

// ---- Enrollment, client side -----------------------------------------------

StatusOr<std::string> FetchAndPinCaCertificate(
    std::string_view host_port, std::string_view expected_fingerprint,
    std::chrono::milliseconds timeout) {
  CAIRN_ASSIGN_OR_RETURN(std::string expected,
                         NormalizeFingerprint(expected_fingerprint));
  const auto deadline = std::chrono::steady_clock::now() + timeout;

  std::string host_port_str(host_port);
  char* host_c = nullptr;
  char* port_c = nullptr;
  if (!BIO_parse_hostserv(host_port_str.c_str(), &host_c, &port_c,
                          BIO_PARSE_PRIO_HOST) ||
      host_c == nullptr || port_c == nullptr) {
    OPENSSL_free(host_c);
    OPENSSL_free(port_c);
    ERR_clear_error();
    return absl::InvalidArgumentError(StrCat(
        "server address '", host_port, "' is not host:port or [v6]:port"));
  }
  std::string host(host_c), port(port_c);
  OPENSSL_free(host_c);
  OPENSSL_free(port_c);

  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) {
    return absl::InternalError(StrCat("SSL_CTX_new: ", OpenSslErrors()));
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  // Trust is decided by the fingerprint below, not by a trust store: at this
  // point the client has none.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  static const unsigned char kAlpnH2[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpnH2, sizeof(kAlpnH2));

  CAIRN_ASSIGN_OR_RETURN(int fd, ConnectTcp(host, port, deadline));
  ERR_clear_error();
  SslPtr ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
  bool host_is_ip = ip != nullptr;
  ASN1_OCTET_STRING_free(ip);
  ERR_clear_error();
  if (!host_is_ip) SSL_set_tlsext_host_name(ssl.get(), host.c_str());
  Status handshake = absl::OkStatus();
  while (true) {
    int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    int err = SSL_get_error(ssl.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      handshake = WaitFd(fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                         deadline, "the TLS handshake");
      if (handshake.ok()) continue;
    } else {
      handshake = absl::UnavailableError(StrCat(
          "TLS 1.3 handshake with ", host_port, " failed: ", OpenSslErrors()));
    }
    break;
  }
  auto close_connection = [&]() {
    if (handshake.ok()) SSL_shutdown(ssl.get());  // best effort close_notify
    ssl.reset();
    ::close(fd);
  };
  if (!handshake.ok()) {
    close_connection();
    return handshake;
  }

  // On the client side the peer chain includes the server's leaf.
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get());
  X509* leaf = SSL_get0_peer_certificate(ssl.get());
  std::vector<X509Ptr> presented;
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    X509* c = sk_X509_value(chain, i);
    X509_up_ref(c);
    presented.emplace_back(c);
  }
  X509Ptr leaf_ref;
  if (leaf != nullptr) {
    X509_up_ref(leaf);
    leaf_ref.reset(leaf);
  }
  close_connection();
  if (presented.empty() || leaf_ref == nullptr) {
    return absl::UnavailableError(
        StrCat("server ", host_port, " presented no certificate"));
  }

  X509* pinned = nullptr;
  std::string seen;
  for (auto& c : presented) {
    std::string fp = Sha256Fingerprint(c.get());
    if (fp == expected) pinned = c.get();
    if (X509_check_ca(c.get()) >= 1) seen += (seen.empty() ? "" : ", ") + fp;
  }
  if (pinned == nullptr) {
    if (seen.empty()) {
      for (auto& c : presented)
        seen += (seen.empty() ? "" : ", ") + Sha256Fingerprint(c.get());
    }
    return absl::PermissionDeniedError(
        StrCat("CA fingerprint mismatch: expected ", expected,
               ", server presented ", seen,
               ". Do not enroll: either the fingerprint is mistyped or "
               "something is impersonating the server"));
  }
  if (X509_check_ca(pinned) < 1) {
    return absl::PermissionDeniedError(
        StrCat("the certificate with fingerprint ", expected, " that ",
               host_port, " presented is not a CA certificate"));
  }
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (auto& c : presented) sk_X509_push(untrusted, c.get());
  Status verified = VerifyCertificate(leaf_ref.get(), {pinned}, untrusted,
                                      X509_PURPOSE_SSL_SERVER, host);
  sk_X509_free(untrusted);
  if (!verified.ok()) {
    return absl::PermissionDeniedError(StrCat(
        "the certificate of ", host_port,
        " does not verify against the pinned CA: ", ToStd(verified.message())));
  }
  return CertificateToPem(pinned);
}

StatusOr<KeyAndCsr> CreateKeyAndCsr(std::string_view identity) {
  if (!IsValidIdentity(identity)) {
    return absl::InvalidArgumentError(
        StrCat("identity '", identity,
               "' is not valid: use 1-128 characters of A-Z a-z 0-9 . _ @ -"));
  }
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) {
    return absl::InternalError(StrCat("P-256 keygen: ", OpenSslErrors()));
  }
  X509ReqPtr req(X509_REQ_new());
  std::string cn(identity);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (cn.size() > 64) cn.resize(64);  // X.520 limit; the CA ignores it anyway
  if (!X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) ||
      !X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) ||
      !X509_REQ_set_pubkey(req.get(), key.get()) ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return absl::InternalError(StrCat("building the CSR: ", OpenSslErrors()));
  }
  BioPtr key_bio = NewMemBio();
  BioPtr csr_bio = NewMemBio();
  if (!PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0,
                                nullptr, nullptr) ||
      !PEM_write_bio_X509_REQ(csr_bio.get(), req.get())) {
    return absl::InternalError(StrCat("writing PEM: ", OpenSslErrors()));
  }
  return KeyAndCsr{BioContents(key_bio.get()), BioContents(csr_bio.get())};
}

}  // namespace cairn
