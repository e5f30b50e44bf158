// ServerHome: cairn-server's state directory - its layout, `cairn-server
// init`, and loading what `cairn-server run` needs.
//
// Layout (DIR is --dir; mode 0700 when created here):
//   DIR/ca/            internal CA (server/certificate_authority.h)
//   DIR/tls/           the server's TLS identity: ca.pem, cert.pem (SANs
//                      localhost, 127.0.0.1, ::1 and the --name values),
//                      key.pem (0600). Its key also signs session tickets.
//   DIR/admin/         the first admin credential: ca.pem, cert.pem (role
//                      admin, identity "admin"), key.pem (0600). This is what
//                      `cairnctl --cred-dir DIR/admin` uses; move it to the
//                      administrator's machine.
//   DIR/catalog/       the RocksDB catalog (server/catalog.h), holding user
//                      "admin" bound to that certificate's fingerprint.
//   DIR/keys/default.key  the default storage policy's data key (0600), only
//                      with --encrypt (docs/formats/keyfile.md).
//
// Thread safety: free functions; not for concurrent use on the same DIR.
#ifndef CAIRN_SERVER_SERVER_HOME_H_
#define CAIRN_SERVER_SERVER_HOME_H_

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/tls.h"
#include "server/catalog.h"
#include "server/certificate_authority.h"

namespace cairn {

struct ServerPaths {
  explicit ServerPaths(std::string dir);
  std::string dir;
  std::string ca;           // DIR/ca
  std::string tls;          // DIR/tls
  std::string admin;        // DIR/admin
  std::string catalog;      // DIR/catalog
  std::string keys;         // DIR/keys
  std::string default_key;  // DIR/keys/default.key
};

struct InitOptions {
  std::string dir;
  // Extra names the server certificate is valid for (host names or IP
  // addresses), besides localhost, 127.0.0.1 and ::1.
  std::vector<std::string> names;
  // Create the default storage policy's data key: backups are encrypted.
  bool encrypt = false;
};

struct InitReport {
  std::string ca_fingerprint;
  std::string admin_cred_dir;
  std::string data_key_file;  // empty without --encrypt
  std::string data_key_fingerprint;
};

// Creates everything above. AlreadyExists (changing nothing) if DIR exists
// and is not empty; InvalidArgument for a malformed name. A crash part-way
// leaves a non-empty DIR that init refuses: remove it and run init again.
StatusOr<InitReport> InitServerHome(const InitOptions& options);

// What `run` loads from DIR.
struct LoadedServerHome {
  ServerPaths paths;
  std::unique_ptr<CertificateAuthority> ca;
  TlsFiles tls;
  std::string
      data_key;  // 32 raw bytes, or empty if DIR/keys/default.key is absent
};
// NotFound (naming DIR and suggesting `cairn-server init`) if DIR holds no
// server; the loaders' errors otherwise. The catalog is opened separately.
StatusOr<LoadedServerHome> LoadServerHome(const std::string& dir);

}  // namespace cairn

#endif  // CAIRN_SERVER_SERVER_HOME_H_
