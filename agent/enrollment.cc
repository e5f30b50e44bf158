#include "agent/enrollment.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>

#include "cairn/v1/agent.grpc.pb.h"
#include "common/env.h"
#include "common/peer_identity.h"
#include "common/role.h"
#include "common/strings.h"
#include "common/tls.h"

namespace cairn {
namespace {

constexpr int kControlMaxMessageBytes = 4 << 20;

Status FromGrpc(const grpc::Status& s, const std::string& server) {
  if (s.ok()) return absl::OkStatus();
  auto code = static_cast<absl::StatusCode>(s.error_code());
  std::string msg = s.error_message();
  switch (code) {
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return absl::PermissionDeniedError(
          StrCat("the server refused the enrollment: ", msg,
                 " (a token is single-use and expires; create a new one "
                 "with `cairnctl token create --role agent`)"));
    case absl::StatusCode::kUnavailable:
      return absl::UnavailableError(
          StrCat("cannot reach cairn-server at ", server, ": ", msg));
    case absl::StatusCode::kDeadlineExceeded:
      return absl::DeadlineExceededError(
          StrCat("cairn-server at ", server, " did not answer in time"));
    default:
      return Status(code, StrCat("enrollment at ", server, " failed: ", msg));
  }
}

Status CheckDirIsFree(const std::string& dir) {
  for (const char* f : {kTlsCertFile, kTlsKeyFile, kAgentConfigFile}) {
    CAIRN_ASSIGN_OR_RETURN(bool exists,
                           Env::Default()->FileExists(JoinPath(dir, f)));
    if (exists) {
      return absl::AlreadyExistsError(
          StrCat(dir, " already holds an enrollment (", f,
                 "); remove the directory to enroll again"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string DefaultAgentName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "agent";
  std::string name;
  for (const char* p = buf; *p != '\0'; ++p) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
              c == '@';
    name.push_back(ok ? c : '-');
  }
  while (!name.empty() && name.front() == '.') name.erase(name.begin());
  if (name.size() > 128) name.resize(128);
  return IsValidIdentity(name) ? name : "agent";
}

StatusOr<AgentConfig> EnrollAgent(const EnrollOptions& o) {
  if (o.server.empty())
    return absl::InvalidArgumentError("--server is required");
  if (o.token.empty()) return absl::InvalidArgumentError("--token is required");
  if (o.state_dir.empty()) {
    return absl::InvalidArgumentError("--state-dir is required");
  }
  CAIRN_ASSIGN_OR_RETURN(std::string fingerprint,
                         NormalizeFingerprint(o.ca_fingerprint));
  const std::string name = o.name.empty() ? DefaultAgentName() : o.name;
  if (!IsValidIdentity(name)) {
    return absl::InvalidArgumentError(
        StrCat("--name '", name,
               "' is not a valid identity (1-128 of A-Z a-z 0-9 . _ @ -, not "
               "starting with '.')"));
  }
  CAIRN_RETURN_IF_ERROR(CheckDirIsFree(o.state_dir));

  // 1. Pin the CA.
  CAIRN_ASSIGN_OR_RETURN(
      std::string ca_pem,
      FetchAndPinCaCertificate(o.server, fingerprint, o.timeout));
  // 2. Key and CSR.
  CAIRN_ASSIGN_OR_RETURN(KeyAndCsr key, CreateKeyAndCsr(name));
  // 3. Enroll.
  CAIRN_ASSIGN_OR_RETURN(auto creds, MakeEnrollmentChannelCredentials(ca_pem));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kControlMaxMessageBytes);
  args.SetMaxSendMessageSize(kControlMaxMessageBytes);
  auto channel = grpc::CreateCustomChannel(o.server, creds, args);
  auto stub = v1::AgentControl::NewStub(channel);
  v1::EnrollRequest req;
  req.set_token(o.token);
  req.set_hostname(name);
  req.set_csr_pem(key.csr_pem);
  req.set_role(v1::ROLE_AGENT);
  v1::EnrollResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + o.timeout);
  CAIRN_RETURN_IF_ERROR(FromGrpc(stub->Enroll(&ctx, req, &resp), o.server));

  // 4. Check the answer before keeping anything.
  if (!resp.ca_certificate_pem().empty()) {
    CAIRN_ASSIGN_OR_RETURN(std::string answered,
                           CertificateFingerprint(resp.ca_certificate_pem()));
    if (answered != fingerprint) {
      return absl::PermissionDeniedError(
          StrCat("the server answered with CA ", answered,
                 ", not the pinned CA ", fingerprint));
    }
  }
  CAIRN_ASSIGN_OR_RETURN(PeerIdentity peer, PeerIdentityFromCertificatePem(
                                                resp.certificate_pem()));
  if (peer.role != Role::kAgent) {
    return absl::PermissionDeniedError(
        StrCat("the server issued a certificate for role ", RoleName(peer.role),
               ", not agent"));
  }
  if (!resp.identity().empty() && resp.identity() != peer.identity) {
    return absl::InternalError(StrCat("the server named identity '",
                                      resp.identity(), "' but certified '",
                                      peer.identity, "'"));
  }
  // The certificate must be for our key: building mTLS credentials checks
  // that the key matches the certificate.
  TlsFiles files{ca_pem, resp.certificate_pem(), key.key_pem};
  CAIRN_RETURN_IF_ERROR(MakeChannelCredentials(files).status());

  AgentConfig config;
  config.server = o.server;
  config.identity = peer.identity;
  config.hostname = name;
  Status s = WriteTlsFiles(o.state_dir, files);
  if (s.ok()) s = WriteAgentConfig(o.state_dir, config);
  if (!s.ok()) {
    std::error_code ec;
    for (const char* f :
         {kTlsCertFile, kTlsKeyFile, kTlsCaFile, kAgentConfigFile}) {
      std::filesystem::remove(JoinPath(o.state_dir, f), ec);
    }
    return s;
  }
  return config;
}

}  // namespace cairn
