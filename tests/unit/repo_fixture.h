// A repository with helpers to write backups of in-memory images.
#ifndef CAIRN_TESTS_UNIT_REPO_FIXTURE_H_
#define CAIRN_TESTS_UNIT_REPO_FIXTURE_H_

#include <gtest/gtest.h>

#include "agent/backup_pipeline.h"
#include "media_agent/repository.h"
#include "tests/testing/fault_injection_env.h"
#include "tests/testing/test_util.h"

namespace cairn {

class RepoFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    RepositoryOptions o;
    o.create_if_missing = true;
    o.env = &env_;
    auto r = Repository::Open(dir_.Sub("repo"), o);
    ASSERT_TRUE(r.ok()) << r.status();
    repo_ = *std::move(r);
  }

  // Backs up `data` as `id` of `source` with 64 KiB chunks.
  BackupResult BackupData(const std::string& id, const std::string& data,
                          const std::string& parent = "",
                          const DataKey* key = nullptr,
                          const std::string& source = "host") {
    std::string path = dir_.Sub("img-" + id);
    testing::WriteFileOrDie(path, data);
    BackupRequest req;
    req.source_path = path;
    req.source_name = source;
    req.backup_id = id;
    Manifest parent_manifest;
    if (!parent.empty()) {
      auto pm = repo_->LoadManifest(parent, key);
      EXPECT_TRUE(pm.ok()) << pm.status();
      if (pm.ok()) parent_manifest = *pm;
      req.parent = &parent_manifest;
    }
    req.chunk_size = 64 << 10;
    req.key = key;
    auto session = repo_->BeginBackup();
    auto r = RunBackup(req, session.get());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : BackupResult{};
  }

  testing::ScratchDir dir_;
  testing::FaultInjectionEnv env_{Env::Default()};
  std::unique_ptr<Repository> repo_;
};

}  // namespace cairn

#endif  // CAIRN_TESTS_UNIT_REPO_FIXTURE_H_
