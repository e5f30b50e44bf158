#include "common/enrollment_client.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include "cairn/v1/agent.grpc.pb.h"
#include "common/env.h"
#include "common/message_limits.h"
#include "common/peer_identity.h"
#include "common/strings.h"

namespace cairn {
namespace {

Status FromGrpc(const grpc::Status& s, const EnrollmentClientOptions& o) {
  if (s.ok()) return absl::OkStatus();
  auto code = static_cast<absl::StatusCode>(s.error_code());
  std::string msg = s.error_message();
  switch (code) {
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return absl::PermissionDeniedError(
          StrCat("the server refused the enrollment: ", msg,
                 " (a token is single-use and expires; create a new one "
                 "with `cairnctl token create --role ",
                 RoleName(o.role), "`)"));
    case absl::StatusCode::kUnavailable:
      return absl::UnavailableError(
          StrCat("cannot reach cairn-server at ", o.server, ": ", msg));
    case absl::StatusCode::kDeadlineExceeded:
      return absl::DeadlineExceededError(
          StrCat("cairn-server at ", o.server, " did not answer in time"));
    default:
      return Status(code, StrCat("enrollment at ", o.server, " failed: ", msg));
  }
}

}  // namespace

std::string DefaultIdentityName(const std::string& fallback) {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return fallback;
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
  return IsValidIdentity(name) ? name : fallback;
}

Status CheckNotEnrolled(const std::string& dir,
                        std::initializer_list<const char*> files) {
  for (const char* f : files) {
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

StatusOr<Enrollment> EnrollWithServer(const EnrollmentClientOptions& o) {
  if (o.server.empty())
    return absl::InvalidArgumentError("--server is required");
  if (o.token.empty()) return absl::InvalidArgumentError("--token is required");
  if (o.role != Role::kAgent && o.role != Role::kMedia) {
    return absl::InvalidArgumentError(
        "enrollment is for role agent or media only");
  }
  if (o.role == Role::kMedia && o.address.empty()) {
    return absl::InvalidArgumentError(
        "a media agent needs --address HOST:PORT (where agents reach it)");
  }
  if (!IsValidIdentity(o.name)) {
    return absl::InvalidArgumentError(
        StrCat("--name '", o.name,
               "' is not a valid identity (1-128 of A-Z a-z 0-9 . _ @ -, not "
               "starting with '.')"));
  }
  CAIRN_ASSIGN_OR_RETURN(std::string fingerprint,
                         NormalizeFingerprint(o.ca_fingerprint));

  // 1. Pin the CA.
  CAIRN_ASSIGN_OR_RETURN(
      std::string ca_pem,
      FetchAndPinCaCertificate(o.server, fingerprint, o.timeout));
  // 2. Key and CSR.
  CAIRN_ASSIGN_OR_RETURN(KeyAndCsr key, CreateKeyAndCsr(o.name));
  // 3. Enroll.
  CAIRN_ASSIGN_OR_RETURN(auto creds, MakeEnrollmentChannelCredentials(ca_pem));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kControlMaxMessageBytes);
  args.SetMaxSendMessageSize(kControlMaxMessageBytes);
  auto channel = grpc::CreateCustomChannel(o.server, creds, args);
  auto stub = v1::AgentControl::NewStub(channel);
  v1::EnrollRequest req;
  req.set_token(o.token);
  req.set_hostname(o.name);
  req.set_csr_pem(key.csr_pem);
  req.set_role(o.role == Role::kAgent ? v1::ROLE_AGENT : v1::ROLE_MEDIA);
  req.set_address(o.address);
  v1::EnrollResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + o.timeout);
  CAIRN_RETURN_IF_ERROR(FromGrpc(stub->Enroll(&ctx, req, &resp), o));

  // 4. Check the answer before handing anything back.
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
  if (peer.role != o.role) {
    return absl::PermissionDeniedError(
        StrCat("the server issued a certificate for role ", RoleName(peer.role),
               ", not ", RoleName(o.role)));
  }
  if (!resp.identity().empty() && resp.identity() != peer.identity) {
    return absl::InternalError(StrCat("the server named identity '",
                                      resp.identity(), "' but certified '",
                                      peer.identity, "'"));
  }
  Enrollment e;
  e.identity = peer.identity;
  e.files = TlsFiles{ca_pem, resp.certificate_pem(), key.key_pem};
  // The certificate must be for our key: building mTLS credentials checks
  // that the key matches the certificate.
  CAIRN_RETURN_IF_ERROR(MakeChannelCredentials(e.files).status());
  if (o.role == Role::kMedia) {
    if (resp.ticket_signer_pem().empty()) {
      return absl::FailedPreconditionError(
          "the server sent no ticket signer certificate (server too old?)");
    }
    // The signer must be certified by the pinned CA: MakeServerCredentials
    // with a throwaway key would not do, so verify the chain directly.
    CAIRN_RETURN_IF_ERROR(
        VerifyCertificateAgainstCa(resp.ticket_signer_pem(), ca_pem));
    e.ticket_signer_pem = resp.ticket_signer_pem();
  }
  return e;
}

}  // namespace cairn
