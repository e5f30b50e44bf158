#include "media_agent/consolidator.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "agent/image_restore.h"
#include "common/image_reader.h"
#include "tests/unit/repo_fixture.h"

namespace cairn {
namespace {

class ConsolidatorTest : public RepoFixture {
 protected:
  std::string RestoreToString(const std::string& id,
                              const DataKey* key = nullptr) {
    auto reader = ImageReader::Open(repo_.get(), id, key);
    EXPECT_TRUE(reader.ok()) << reader.status();
    std::string out = dir_.Sub("out-" + id);
    EXPECT_TRUE(RestoreImage(reader->get(), out, {}).ok());
    return testing::ReadFileOrDie(out);
  }
  // full -> inc1 -> inc2, each changing a different region.
  std::string MakeChain(const DataKey* key) {
    std::string v = testing::TextLikeBytes(1 << 20, 1);
    BackupData("full", v, "", key);
    v[100] ^= 1;
    BackupData("inc1", v, "full", key);
    v[700000] ^= 1;
    BackupData("inc2", v, "inc1", key);
    return v;
  }
};

TEST_F(ConsolidatorTest, SyntheticFullWithoutOpeningAnyChunk) {
  std::string latest = MakeChain(nullptr);
  env_.ClearOpened();
  ConsolidateOptions o;
  o.tip_id = "inc2";
  auto r = Consolidate(repo_.get(), o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& path : env_.OpenedForRead()) {
    EXPECT_FALSE(absl::StrContains(path, "/chunks/"))
        << "opened chunk file " << path;
  }
  EXPECT_FALSE(env_.OpenedForRead().empty());  // it did read the manifests
  EXPECT_EQ(r->chain, (std::vector<std::string>{"full", "inc1", "inc2"}));
  EXPECT_EQ(r->manifest.backup_id, "inc2.full");
  EXPECT_EQ(r->manifest.kind, BackupKind::kSyntheticFull);
  EXPECT_TRUE(r->manifest.parent_id.empty());

  auto stored = repo_->LoadManifest("inc2.full", nullptr);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->consolidated_from, r->chain);
  auto tip = repo_->LoadManifest("inc2", nullptr);
  EXPECT_EQ(stored->created_unix_us, tip->created_unix_us);
  EXPECT_EQ(RestoreToString("inc2.full"), latest);
}

TEST_F(ConsolidatorTest, RetireRemovesTheChainAndTheSyntheticStillRestores) {
  std::string latest = MakeChain(nullptr);
  ConsolidateOptions o;
  o.tip_id = "inc2";
  o.new_id = "synth";
  o.retire_chain = true;
  auto r = Consolidate(repo_.get(), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*repo_->manifests().List(), (std::vector<std::string>{"synth"}));
  EXPECT_EQ(RestoreToString("synth"), latest);
}

TEST_F(ConsolidatorTest, EncryptedChainNeedsItsKeyToSign) {
  DataKey key = DataKey::Generate();
  std::string latest = MakeChain(&key);
  ConsolidateOptions o;
  o.tip_id = "inc2";
  // Without the key, LoadManifest skips the signature but the synthetic
  // full cannot be signed.
  EXPECT_EQ(Consolidate(repo_.get(), o).status().code(),
            absl::StatusCode::kFailedPrecondition);
  o.key = &key;
  ASSERT_TRUE(Consolidate(repo_.get(), o).ok());
  auto signed_m = repo_->LoadManifest("inc2.full", &key);
  ASSERT_TRUE(signed_m.ok()) << signed_m.status();
  EXPECT_EQ(RestoreToString("inc2.full", &key), latest);
}

TEST_F(ConsolidatorTest, RefusesFullsAndBrokenChains) {
  MakeChain(nullptr);
  ConsolidateOptions o;
  o.tip_id = "full";
  EXPECT_EQ(Consolidate(repo_.get(), o).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(repo_->DeleteBackup("inc1").ok());
  o.tip_id = "inc2";
  auto r = Consolidate(repo_.get(), o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(r.status().message()).find("broken at parent 'inc1'"),
            std::string::npos);
  o.tip_id = "missing";
  EXPECT_EQ(Consolidate(repo_.get(), o).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cairn
