#include "server/enrollment_service.h"

#include <arpa/inet.h>

#include <vector>

#include "common/strings.h"
#include "common/tls.h"
#include "server/catalog_records.h"

namespace cairn {
namespace {

bool IsIpAddress(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// "host:port" or "[v6]:port" to its host. InvalidArgument otherwise.
StatusOr<std::string> HostOf(std::string_view address) {
  std::string_view host;
  std::string_view port;
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError(
          StrCat("media agent address '", address, "' is not [host]:port"));
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat("media agent address '", address, "' is not host:port"));
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat("media agent address '", address, "' is not host:port"));
  }
  return std::string(host);
}

}  // namespace

StatusOr<CreatedToken> EnrollmentService::CreateToken(
    Role role, std::chrono::seconds ttl, std::string_view created_by,
    const AuditEntry* audit) {
  if (role != Role::kAgent && role != Role::kMedia) {
    return absl::InvalidArgumentError(
        StrCat("tokens are for role agent or media, not ", RoleName(role)));
  }
  if (ttl < kMinTokenTtl || ttl > kMaxTokenTtl) {
    return absl::InvalidArgumentError(
        StrCat("token lifetime must be between ", kMinTokenTtl.count(), " and ",
               kMaxTokenTtl.count(), " seconds, got ", ttl.count()));
  }
  CAIRN_ASSIGN_OR_RETURN(
      IssuedToken issued,
      catalog_->CreateToken(
          role,
          std::chrono::duration_cast<std::chrono::microseconds>(ttl).count(),
          created_by, audit));
  return CreatedToken{std::move(issued), ca_->Fingerprint()};
}

StatusOr<EnrollmentResult> EnrollmentService::Enroll(
    const EnrollmentRequest& request) {
  if (request.token.empty() || request.token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(
        StrCat("enrollment token must be 1..", kMaxTokenBytes, " bytes"));
  }
  if (request.csr_pem.empty() || request.csr_pem.size() > kMaxCsrBytes) {
    return absl::InvalidArgumentError(
        StrCat("certificate request must be 1..", kMaxCsrBytes, " bytes"));
  }
  if (request.role != Role::kAgent && request.role != Role::kMedia) {
    return absl::InvalidArgumentError(
        "enrollment is for role agent or media only");
  }
  const std::string& identity = request.hostname;
  const char* what =
      request.role == Role::kAgent ? "client id" : "media agent id";
  if (!IsValidIdentity(identity)) {
    return absl::InvalidArgumentError(StrCat(
        "hostname '", identity,
        "' is not a valid identity (1-128 characters of A-Z a-z 0-9 . _ -, "
        "not starting with '.')"));
  }
  CAIRN_RETURN_IF_ERROR(ValidateCatalogId(identity, what));

  IssueOptions issue;
  if (request.role == Role::kMedia) {
    CAIRN_ASSIGN_OR_RETURN(std::string host, HostOf(request.address));
    (IsIpAddress(host) ? issue.ip_addresses : issue.dns_names)
        .push_back(std::move(host));
  } else if (!request.address.empty()) {
    return absl::InvalidArgumentError(
        "address is only for media agents; a client agent dials out");
  }
  // The certificate is signed first but handed out only once the catalog
  // has consumed the token (which checks the token before the identity, so
  // a caller without a valid token learns nothing about enrolled names).
  CAIRN_ASSIGN_OR_RETURN(
      std::string cert,
      ca_->SignCsr(request.csr_pem, identity, request.role, issue));
  CAIRN_ASSIGN_OR_RETURN(std::string fingerprint, CertificateFingerprint(cert));

  AuditEntry audit;
  audit.actor = identity;
  audit.role = request.role;
  audit.action =
      request.role == Role::kAgent ? "client.enroll" : "media.enroll";
  audit.target =
      StrCat(request.role == Role::kAgent ? "client/" : "media/", identity);
  audit.result = "ok";
  audit.details = StrCat("certificate ", fingerprint);

  if (request.role == Role::kAgent) {
    Client client;
    client.client_id = identity;
    client.display_name = identity;
    client.cert_fingerprint = fingerprint;
    CAIRN_RETURN_IF_ERROR(
        catalog_->ConsumeToken(request.token, client, &audit).status());
  } else {
    MediaAgent agent;
    agent.media_agent_id = identity;
    agent.address = request.address;
    agent.cert_fingerprint = fingerprint;
    agent.cert_pem = cert;
    CAIRN_RETURN_IF_ERROR(
        catalog_->ConsumeMediaToken(request.token, agent, &audit).status());
  }
  EnrollmentResult result{identity, std::move(cert), ca_->CertificatePem()};
  if (request.role == Role::kMedia)
    result.ticket_signer_pem = ticket_signer_pem_;
  return result;
}

}  // namespace cairn
