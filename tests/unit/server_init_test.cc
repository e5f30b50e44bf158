// `cairn-server init` (server/server_home.h) and the server configuration
// file (server/server_config.h).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "common/peer_identity.h"
#include "common/tls.h"
#include "server/catalog.h"
#include "server/server_config.h"
#include "server/server_home.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST(ServerInitTest, CreatesCaServerCertAdminCredentialCatalogAndKey) {
  testing::ScratchDir dir;
  InitOptions o;
  o.dir = dir.Sub("home");
  o.names = {"backup.example.org", "10.1.2.3"};
  o.encrypt = true;
  auto report = InitServerHome(o);
  ASSERT_TRUE(report.ok()) << report.status();
  ServerPaths p(o.dir);

  EXPECT_EQ(ModeOf(p.dir), 0700u);
  auto ca = CertificateAuthority::Load(p.ca);
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_EQ(report->ca_fingerprint, (*ca)->Fingerprint());

  auto tls = ReadTlsFiles(p.tls);
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_EQ(ModeOf(p.tls + "/key.pem"), 0600u);
  EXPECT_TRUE(MakeServerCredentials(*tls).ok());

  auto admin = ReadTlsFiles(p.admin);
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_EQ(ModeOf(p.admin + "/key.pem"), 0600u);
  auto who = PeerIdentityFromCertificatePem(admin->cert_pem);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->identity, "admin");
  EXPECT_EQ(who->role, Role::kAdmin);
  EXPECT_EQ(*CertificateFingerprint(admin->ca_pem), report->ca_fingerprint);

  EXPECT_EQ(ModeOf(p.default_key), 0600u);
  EXPECT_TRUE(DataKey::LoadFromFile(p.default_key).ok());
  EXPECT_EQ(report->data_key_file, p.default_key);

  {
    auto catalog = Catalog::Open(p.catalog);
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    auto user = (*catalog)->GetUser("admin");
    ASSERT_TRUE(user.ok()) << user.status();
    EXPECT_EQ(user->role, Role::kAdmin);
    EXPECT_EQ(user->cert_fingerprint, *CertificateFingerprint(admin->cert_pem));
    auto audit = (*catalog)->ListAudit(0, 0);
    ASSERT_TRUE(audit.ok());
    ASSERT_EQ(audit->size(), 1u);
    EXPECT_EQ((*audit)[0].action, "server.init");
  }

  auto loaded = LoadServerHome(o.dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->data_key.size(), 32u);
}

TEST(ServerInitTest, WithoutEncryptThereIsNoDataKey) {
  testing::ScratchDir dir;
  InitOptions o;
  o.dir = dir.Sub("home");
  ASSERT_TRUE(InitServerHome(o).ok());
  EXPECT_FALSE(std::filesystem::exists(ServerPaths(o.dir).default_key));
  auto loaded = LoadServerHome(o.dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->data_key.empty());
}

TEST(ServerInitTest, RefusesToReinitAndChangesNothing) {
  testing::ScratchDir dir;
  InitOptions o;
  o.dir = dir.Sub("home");
  ASSERT_TRUE(InitServerHome(o).ok());
  ServerPaths p(o.dir);
  std::string ca_before = testing::ReadFileOrDie(p.ca + "/ca.crt");
  std::string admin_before = testing::ReadFileOrDie(p.admin + "/cert.pem");

  o.encrypt = true;
  auto again = InitServerHome(o);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(testing::ReadFileOrDie(p.ca + "/ca.crt"), ca_before);
  EXPECT_EQ(testing::ReadFileOrDie(p.admin + "/cert.pem"), admin_before);
  EXPECT_FALSE(std::filesystem::exists(p.default_key));
}

TEST(ServerInitTest, AcceptsAnExistingEmptyDirectory) {
  testing::ScratchDir dir;
  InitOptions o;
  o.dir = dir.Sub("home");
  ASSERT_EQ(::mkdir(o.dir.c_str(), 0700), 0);
  EXPECT_TRUE(InitServerHome(o).ok());
}

TEST(ServerInitTest, RunRefusesADirectoryWithoutAServer) {
  testing::ScratchDir dir;
  auto loaded = LoadServerHome(dir.Sub("nothing"));
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(loaded.status().message()).find("cairn-server init"),
            std::string::npos);
}

TEST(ServerConfigTest, ReadsKeysAndNamesTyposWithTheirLine) {
  testing::ScratchDir dir;
  std::string path = dir.Sub("server.yaml");
  testing::WriteFileOrDie(path,
                          "dir: /srv/cairn\n"
                          "listen: 0.0.0.0:7443\n"
                          "backup:\n"
                          "  chunk_size: 1MiB\n"
                          "embedded_media:\n"
                          "  enabled: true\n"
                          "  store: /srv/cairn/store\n");
  ServerConfig c;
  ASSERT_TRUE(LoadServerConfig(path, &c).ok());
  EXPECT_EQ(c.run.dir, "/srv/cairn");
  EXPECT_EQ(c.run.listen, "0.0.0.0:7443");
  EXPECT_EQ(c.run.chunk_size, 1u << 20);
  EXPECT_TRUE(c.run.embedded_media);
  EXPECT_EQ(c.run.store, "/srv/cairn/store");

  testing::WriteFileOrDie(path, "dir: /srv/cairn\nlisten_adress: x\n");
  ServerConfig bad;
  Status s = LoadServerConfig(path, &bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("listen_adress"), std::string::npos)
      << s;
}

}  // namespace
}  // namespace cairn
