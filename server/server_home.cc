#include "server/server_home.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "common/coding.h"
#include "common/data_key.h"
#include "common/env.h"
#include "common/strings.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;

constexpr char kAdminUser[] = "admin";

bool IsIpAddress(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

Status MakePrivateDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, "mkdir", path);
  }
  return Status();
}

}  // namespace

ServerPaths::ServerPaths(std::string d)
    : dir(std::move(d)),
      ca(dir + "/ca"),
      tls(dir + "/tls"),
      admin(dir + "/admin"),
      catalog(dir + "/catalog"),
      keys(dir + "/keys"),
      default_key(dir + "/keys/default.key") {}

StatusOr<InitReport> InitServerHome(const InitOptions& options) {
  if (options.dir.empty()) {
    return absl::InvalidArgumentError("--dir is required");
  }
  std::vector<std::string> dns_names;
  std::vector<std::string> ips;
  for (const std::string& name : options.names) {
    if (name.empty()) continue;
    (IsIpAddress(name) ? ips : dns_names).push_back(name);
  }
  std::error_code ec;
  if (fs::exists(options.dir, ec)) {
    if (!fs::is_directory(options.dir, ec)) {
      return absl::AlreadyExistsError(
          StrCat(options.dir, " exists and is not a directory"));
    }
    if (!fs::is_empty(options.dir, ec) || ec) {
      return absl::AlreadyExistsError(StrCat(
          options.dir,
          " is not empty: it already holds a server (or something else); "
          "init changes nothing"));
    }
  }
  ServerPaths paths(options.dir);
  CAIRN_RETURN_IF_ERROR(MakePrivateDir(paths.dir));

  std::string cn = "Cairn CA";
  if (!dns_names.empty()) cn = StrCat("Cairn CA ", dns_names.front());
  if (cn.size() > 64) cn = cn.substr(0, 64);
  CAIRN_ASSIGN_OR_RETURN(auto ca, CertificateAuthority::Create(paths.ca, cn));

  CAIRN_ASSIGN_OR_RETURN(IssuedCertificate server,
                         ca->IssueServerCertificate(dns_names, ips));
  CAIRN_RETURN_IF_ERROR(WriteTlsFiles(
      paths.tls, {ca->CertificatePem(), server.cert_pem, server.key_pem}));

  CAIRN_ASSIGN_OR_RETURN(KeyAndCsr admin_key, CreateKeyAndCsr(kAdminUser));
  CAIRN_ASSIGN_OR_RETURN(
      std::string admin_cert,
      ca->SignCsr(admin_key.csr_pem, kAdminUser, Role::kAdmin));
  CAIRN_ASSIGN_OR_RETURN(std::string admin_fp,
                         CertificateFingerprint(admin_cert));
  CAIRN_RETURN_IF_ERROR(WriteTlsFiles(
      paths.admin, {ca->CertificatePem(), admin_cert, admin_key.key_pem}));

  InitReport report;
  report.ca_fingerprint = ca->Fingerprint();
  report.admin_cred_dir = paths.admin;
  if (options.encrypt) {
    CAIRN_RETURN_IF_ERROR(MakePrivateDir(paths.keys));
    DataKey key = DataKey::Generate();
    CAIRN_RETURN_IF_ERROR(key.SaveToFile(paths.default_key));
    report.data_key_file = paths.default_key;
    report.data_key_fingerprint = key.FingerprintHex();
  }

  // The catalog last: a directory with a catalog is a complete server.
  CAIRN_ASSIGN_OR_RETURN(auto catalog, Catalog::Open(paths.catalog));
  User admin;
  admin.name = kAdminUser;
  admin.role = Role::kAdmin;
  admin.cert_fingerprint = admin_fp;
  AuditEntry audit;
  audit.actor = "cairn-server";
  audit.role = Role::kSystem;
  audit.action = "server.init";
  audit.target = StrCat("user/", kAdminUser);
  audit.result = "ok";
  audit.details = StrCat("CA ", report.ca_fingerprint,
                         options.encrypt ? ", encrypted default policy" : "");
  CAIRN_RETURN_IF_ERROR(catalog->PutUser(admin, &audit));
  CAIRN_RETURN_IF_ERROR(catalog->Close());
  return report;
}

StatusOr<LoadedServerHome> LoadServerHome(const std::string& dir) {
  ServerPaths paths(dir);
  std::error_code ec;
  if (!fs::exists(paths.catalog, ec) || !fs::exists(paths.tls, ec)) {
    return absl::NotFoundError(
        StrCat(dir, " holds no Cairn server; run `cairn-server init --dir ",
               dir, "` first"));
  }
  CAIRN_ASSIGN_OR_RETURN(auto ca, CertificateAuthority::Load(paths.ca));
  CAIRN_ASSIGN_OR_RETURN(TlsFiles tls, ReadTlsFiles(paths.tls));
  std::string data_key;
  if (fs::exists(paths.default_key, ec)) {
    CAIRN_ASSIGN_OR_RETURN(std::string text,
                           ReadPrivateFile(paths.default_key));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
      text.pop_back();
    }
    if (!HexDecode(text, &data_key) || data_key.size() != DataKey::kSize) {
      return absl::DataLossError(
          StrCat(paths.default_key, " is not a data key (64 hex digits)"));
    }
  }
  return LoadedServerHome{std::move(paths), std::move(ca), std::move(tls),
                          std::move(data_key)};
}

}  // namespace cairn
