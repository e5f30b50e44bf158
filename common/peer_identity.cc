#include "common/peer_identity.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <memory>

#include "common/openssl_util.h"
#include "common/strings.h"

namespace cairn {
namespace {

constexpr std::string_view kRoleUriPrefix = "cairn://role/";

std::string_view AsView(const ASN1_STRING* s) {
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
          static_cast<size_t>(ASN1_STRING_length(s))};
}

}  // namespace

std::string RoleUri(Role role, std::string_view identity) {
  return StrCat(kRoleUriPrefix, RoleName(role), "/", identity);
}

StatusOr<PeerIdentity> PeerIdentityFromCertificatePem(
    std::string_view cert_pem) {
  ERR_clear_error();
  BioPtr bio = MemBio(cert_pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        "the peer certificate is not a valid PEM certificate");
  }

  std::string cn;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  int cn_index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (cn_index >= 0) {
    cn = std::string(AsView(
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, cn_index))));
  }

  if (X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0) != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError(
        StrCat("certificate '", cn,
               "' is not valid for client authentication (no clientAuth "
               "extended key usage); it cannot identify a caller"));
  }

  std::vector<std::string_view> role_uris;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names.get());
       ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    std::string_view uri = AsView(name->d.uniformResourceIdentifier);
    if (uri.substr(0, kRoleUriPrefix.size()) == kRoleUriPrefix)
      role_uris.push_back(uri);
  }
  if (role_uris.size() != 1) {
    return absl::PermissionDeniedError(
        StrCat("certificate '", cn, "' carries ",
               role_uris.empty() ? "no Cairn role" : "more than one Cairn role",
               " (expected exactly one subjectAltName URI cairn://role/<role>/"
               "<identity>); only certificates issued at enrollment identify a "
               "caller"));
  }
  std::string_view rest = role_uris[0].substr(kRoleUriPrefix.size());
  size_t slash = rest.find('/');
  StatusOr<Role> role = slash == std::string_view::npos
                            ? StatusOr<Role>(absl::InvalidArgumentError(""))
                            : ParseRole(rest.substr(0, slash));
  std::string_view identity =
      slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  if (!role.ok() || *role == Role::kSystem || !IsValidIdentity(identity)) {
    return absl::PermissionDeniedError(StrCat("certificate '", cn,
                                              "' has a malformed role URI '",
                                              role_uris[0], "'"));
  }
  if (cn_index >= 0 && identity != cn) {
    return absl::PermissionDeniedError(
        StrCat("certificate '", cn, "' names identity '", identity,
               "' in its role URI; the two must agree"));
  }

  std::string fingerprint = Sha256Fingerprint(cert.get());
  if (fingerprint.empty()) {
    return absl::InternalError("cannot hash the peer certificate");
  }
  PeerIdentity peer;
  peer.identity = std::string(identity);
  peer.role = *role;
  peer.cert_fingerprint = std::move(fingerprint);
  return peer;
}

StatusOr<PeerIdentity> PeerIdentityFromContext(
    const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  std::vector<grpc::string_ref> pems;
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  }
  if (pems.empty()) {
    return absl::UnauthenticatedError(
        "no client certificate: this call requires a certificate issued by "
        "the Cairn CA; enroll first (cairn-agent enroll, or ask an admin for "
        "a credential)");
  }
  return PeerIdentityFromCertificatePem(
      std::string_view(pems[0].data(), pems[0].size()));
}

Status RequireRole(const PeerIdentity& peer,
                   std::initializer_list<Role> allowed, std::string_view what) {
  for (Role r : allowed) {
    if (r == peer.role) return absl::OkStatus();
  }
  std::string names;
  for (Role r : allowed) {
    names += names.empty() ? "" : ", ";
    names += RoleName(r);
  }
  return absl::PermissionDeniedError(StrCat(
      "role ", RoleName(peer.role), " may not call ", what, " (allowed: ",
      names.empty() ? "nobody" : names, "); caller '", peer.identity, "'"));
}

StatusOr<PeerIdentity> AuthorizePeer(const grpc::ServerContextBase& context,
                                     std::initializer_list<Role> allowed,
                                     std::string_view what) {
  CAIRN_ASSIGN_OR_RETURN(PeerIdentity peer, PeerIdentityFromContext(context));
  CAIRN_RETURN_IF_ERROR(RequireRole(peer, allowed, what));
  return peer;
}

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share their numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(ToStd(status.message())));
}

}  // namespace cairn
