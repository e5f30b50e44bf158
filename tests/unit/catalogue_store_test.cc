// Tests of media_agent/catalogue_store.h: the stored file catalogue
// (docs/formats/file-catalogue.md) round trip with and without a key, key
// mismatches, damage detection byte by byte, truncation, size bounds,
// invalid ids and crash safety under a fault-injecting Env.
#include "media_agent/catalogue_store.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "common/coding.h"
#include "common/crc32c.h"
#include "common/strings.h"
#include "tests/testing/test_util.h"
#include "tests/unit/repo_fixture.h"

namespace cairn {
namespace {

using google::protobuf::util::MessageDifferencer;

std::string Secret(char seed) {
  std::string s(DataKey::kSize, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(seed + 5 * i);
  return s;
}

v1::FileCatalogue SmallCatalogue(const std::string& id, int variant = 0) {
  v1::FileCatalogue c;
  c.set_backup_id(id);
  c.set_created_unix_us(1763791200000000 + variant);
  v1::FileSystemCatalogue* fs = c.add_filesystems();
  fs->set_partition(2);
  fs->set_offset(1 << 20);
  fs->set_size(64 << 20);
  fs->set_fs_type("ext4");
  fs->set_label("root \xc3\xa9t\xc3\xa9");  // UTF-8
  fs->set_uuid("0b6a5d2e-7f5c-4b8e-9d1a-2f3c4d5e6f70");
  fs->set_error("partition 2: /bad\\xff: read directory: Bad message");
  auto add = [&](const std::string& path, v1::FileEntry::Type type,
                 uint64_t size) {
    v1::FileEntry* e = fs->add_entries();
    e->set_path(path);
    e->set_type(type);
    e->set_size(size);
    e->set_mode(0644);
    e->set_mtime_ns(1600000000123456789 + variant);
    return e;
  };
  add("/", v1::FileEntry::DIRECTORY, 4096);
  add("/etc", v1::FileEntry::DIRECTORY, 4096);
  v1::FileEntry* f = add("/etc/sshd_config", v1::FileEntry::REGULAR, 3000);
  f->set_extents_complete(true);
  v1::FileExtent* x = f->add_extents();
  x->set_file_offset(0);
  x->set_image_offset((1 << 20) + 8192);
  x->set_length(3000);
  add("/link", v1::FileEntry::SYMLINK, 10)->set_symlink_target("../outside");
  add("/name \xff\xfe", v1::FileEntry::REGULAR, 0);  // bytes, not UTF-8
  v1::FileSystemCatalogue* swap = c.add_skipped();
  swap->set_partition(3);
  swap->set_fs_type("swap");
  return c;
}

void ExpectSame(const v1::FileCatalogue& a, const v1::FileCatalogue& b) {
  std::string diff;
  MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  EXPECT_TRUE(d.Compare(a, b)) << diff;
}

bool DamageCode(absl::StatusCode code) {
  return code == absl::StatusCode::kDataLoss ||
         code == absl::StatusCode::kFailedPrecondition;
}

class CatalogueStoreTest : public RepoFixture {
 protected:
  void SetUp() override {
    RepoFixture::SetUp();
    store_ = std::make_unique<CatalogueStore>(repo_->root(), &env_);
    key_ = std::make_unique<DataKey>(*DataKey::FromSecret(Secret(1)));
    other_ = std::make_unique<DataKey>(*DataKey::FromSecret(Secret(2)));
  }
  std::string FilePath(const std::string& id) { return *store_->Path(id); }

  std::unique_ptr<CatalogueStore> store_;
  std::unique_ptr<DataKey> key_, other_;
};

TEST_F(CatalogueStoreTest, RoundTripWithoutKey) {
  EXPECT_EQ(*store_->List(), std::vector<std::string>{});
  EXPECT_FALSE(*store_->Exists("b1"));
  v1::FileCatalogue c = SmallCatalogue("b1");
  ASSERT_TRUE(store_->Save(c, nullptr).ok());
  EXPECT_TRUE(*store_->Exists("b1"));
  EXPECT_EQ(FilePath("b1"), repo_->root() + "/catalogues/b1.cfc");
  auto got = store_->Load("b1", nullptr);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSame(*got, c);

  std::string raw = testing::ReadFileOrDie(FilePath("b1"));
  EXPECT_EQ(raw.substr(0, 8), "CAIRNFC1");
  EXPECT_EQ(DecodeFixed16(raw.data() + 8), 1);   // version
  EXPECT_EQ(DecodeFixed16(raw.data() + 10), 0);  // flags: not encrypted
  EXPECT_EQ(static_cast<uint8_t>(raw[12]), 2);   // id length
  EXPECT_EQ(raw.substr(13, 2), "b1");
  EXPECT_EQ(raw.substr(15, 16), std::string(16, '\0'));  // no fingerprint
  EXPECT_EQ(DecodeFixed64(raw.data() + 31), c.ByteSizeLong());
  EXPECT_EQ(DecodeFixed32(raw.data() + raw.size() - 4),
            crc32c::Value(raw.data(), raw.size() - 4));
  // A key for an unencrypted catalogue: refused, it could be a forgery.
  Status s = store_->Load("b1", key_.get()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
}

TEST_F(CatalogueStoreTest, RoundTripWithKey) {
  v1::FileCatalogue c = SmallCatalogue("b1");
  ASSERT_TRUE(store_->Save(c, key_.get()).ok());
  auto got = store_->Load("b1", key_.get());
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSame(*got, c);
  std::string raw = testing::ReadFileOrDie(FilePath("b1"));
  EXPECT_EQ(DecodeFixed16(raw.data() + 10), 1);  // encrypted
  EXPECT_EQ(raw.substr(15, 16), key_->fingerprint());
  EXPECT_EQ(raw.find("sshd_config"), std::string::npos);
  EXPECT_EQ(raw.find("outside"), std::string::npos);

  Status none = store_->Load("b1", nullptr).status();
  EXPECT_EQ(none.code(), absl::StatusCode::kFailedPrecondition) << none;
  EXPECT_NE(none.message().find(key_->FingerprintHex()),
            absl::string_view::npos);
  Status wrong = store_->Load("b1", other_.get()).status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kFailedPrecondition) << wrong;
  EXPECT_NE(wrong.message().find(other_->FingerprintHex()),
            absl::string_view::npos);

  // Two saves of the same catalogue differ (random nonce) and both load.
  ASSERT_TRUE(store_->Save(c, key_.get()).ok());
  EXPECT_NE(testing::ReadFileOrDie(FilePath("b1")), raw);
  ASSERT_TRUE(store_->Load("b1", key_.get()).ok());
}

TEST_F(CatalogueStoreTest, SaveReplacesListAndDelete) {
  ASSERT_TRUE(store_->Save(SmallCatalogue("b2"), nullptr).ok());
  ASSERT_TRUE(store_->Save(SmallCatalogue("b1"), key_.get()).ok());
  ASSERT_TRUE(store_->Save(SmallCatalogue("b1", 7), key_.get()).ok());
  ExpectSame(*store_->Load("b1", key_.get()), SmallCatalogue("b1", 7));
  EXPECT_EQ(*store_->List(), (std::vector<std::string>{"b1", "b2"}));
  ASSERT_TRUE(store_->Delete("b1").ok());
  EXPECT_EQ(*store_->List(), (std::vector<std::string>{"b2"}));
  EXPECT_EQ(store_->Delete("b1").code(), absl::StatusCode::kNotFound);
  Status nf = store_->Load("b1", nullptr).status();
  EXPECT_EQ(nf.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(nf.message().find("'b1'"), absl::string_view::npos);
  // Nothing left behind in tmp/.
  EXPECT_EQ(*env_.GetChildren(repo_->root() + "/tmp"),
            std::vector<std::string>{});
}

TEST_F(CatalogueStoreTest, InvalidIdsAreRefused) {
  for (const char* id : {"../evil", "", ".hidden", "a/b", "x\n"}) {
    SCOPED_TRACE(id);
    EXPECT_EQ(store_->Save(SmallCatalogue(id), nullptr).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->Load(id, nullptr).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->Exists(id).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->Delete(id).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(*env_.FileExists(repo_->root() + "/evil.cfc"));
  EXPECT_EQ(*store_->List(), std::vector<std::string>{});
}

TEST_F(CatalogueStoreTest, RefusesStringsProtobufCannotParse) {
  v1::FileCatalogue c = SmallCatalogue("b1");
  c.mutable_filesystems(0)->set_label("bad \xff label");
  EXPECT_EQ(store_->Save(c, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(*store_->Exists("b1"));
}

TEST_F(CatalogueStoreTest, EveryFlippedByteIsDetected) {
  for (const DataKey* key : {static_cast<const DataKey*>(nullptr),
                             static_cast<const DataKey*>(key_.get())}) {
    SCOPED_TRACE(key ? "encrypted" : "plain");
    const v1::FileCatalogue c = SmallCatalogue("b1");
    ASSERT_TRUE(store_->Save(c, key).ok());
    const std::string path = FilePath("b1");
    const std::string good = testing::ReadFileOrDie(path);
    for (size_t i = 0; i < good.size(); ++i) {
      for (uint8_t mask : {0x01, 0x80, 0xff}) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ mask);
        testing::WriteFileOrDie(path, bad);
        auto got = store_->Load("b1", key);
        ASSERT_FALSE(got.ok()) << "byte " << i << " mask " << int{mask};
        EXPECT_TRUE(DamageCode(got.status().code()))
            << "byte " << i << ": " << got.status();
        if (got.status().code() == absl::StatusCode::kDataLoss) {
          EXPECT_NE(got.status().message().find(path), absl::string_view::npos)
              << got.status();
        }
      }
    }
    testing::WriteFileOrDie(path, good);
    ExpectSame(*store_->Load("b1", key), c);
  }
}

TEST_F(CatalogueStoreTest, WithTheKeyEvenARecomputedChecksumDoesNotHelp) {
  // Whoever rewrites the file and its CRC (a bug, or someone with write
  // access to the store) still cannot change an encrypted catalogue.
  ASSERT_TRUE(store_->Save(SmallCatalogue("b1"), key_.get()).ok());
  const std::string path = FilePath("b1");
  const std::string good = testing::ReadFileOrDie(path);
  for (size_t i = 0; i + 4 < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    bad.resize(bad.size() - 4);
    PutFixed32(&bad, crc32c::Value(bad));
    testing::WriteFileOrDie(path, bad);
    auto got = store_->Load("b1", key_.get());
    ASSERT_FALSE(got.ok()) << "byte " << i;
    EXPECT_TRUE(DamageCode(got.status().code())) << got.status();
  }
}

TEST_F(CatalogueStoreTest, TruncatedOrExtendedFilesAreDataLoss) {
  ASSERT_TRUE(store_->Save(SmallCatalogue("b1"), key_.get()).ok());
  const std::string path = FilePath("b1");
  const std::string good = testing::ReadFileOrDie(path);
  for (size_t n = 0; n < good.size(); ++n) {
    testing::WriteFileOrDie(path, good.substr(0, n));
    Status s = store_->Load("b1", key_.get()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << n << ": " << s;
  }
  testing::WriteFileOrDie(path, good + "x");
  EXPECT_EQ(store_->Load("b1", key_.get()).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(CatalogueStoreTest, BoundsDeclaredSizes) {
  ASSERT_TRUE(store_->Save(SmallCatalogue("b1"), nullptr).ok());
  const std::string path = FilePath("b1");
  std::string raw = testing::ReadFileOrDie(path);
  raw.resize(raw.size() - 4);
  EncodeFixed64(raw.data() + 31, uint64_t{5} << 30);  // 5 GiB of catalogue
  PutFixed32(&raw, crc32c::Value(raw));
  testing::WriteFileOrDie(path, raw);
  Status s = store_->Load("b1", nullptr).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("limit"), absl::string_view::npos) << s;
}

TEST_F(CatalogueStoreTest, AFileUnderAnotherBackupsNameIsDataLoss) {
  ASSERT_TRUE(store_->Save(SmallCatalogue("b1"), key_.get()).ok());
  ASSERT_TRUE(env_.CreateDir(repo_->root() + "/catalogues").ok());
  testing::WriteFileOrDie(FilePath("b2"),
                          testing::ReadFileOrDie(FilePath("b1")));
  Status s = store_->Load("b2", key_.get()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("'b1'"), absl::string_view::npos) << s;
}

TEST_F(CatalogueStoreTest, FirstSaveIsDurable) {
  // catalogues/ is created by the first Save; a crash right after it must
  // not lose the directory or the file.
  ASSERT_TRUE(store_->Save(SmallCatalogue("b1"), key_.get()).ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  auto got = store_->Load("b1", key_.get());
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSame(*got, SmallCatalogue("b1"));
}

TEST_F(CatalogueStoreTest, FailedSavesLeaveTheOldCatalogueOrNothing) {
  const v1::FileCatalogue old_c = SmallCatalogue("b1", 1);
  const v1::FileCatalogue new_c = SmallCatalogue("b1", 2);
  ASSERT_TRUE(store_->Save(old_c, nullptr).ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  enum Fault { kWrite, kSync, kRename, kDiskFull };
  for (Fault f : {kWrite, kSync, kRename, kDiskFull}) {
    SCOPED_TRACE(static_cast<int>(f));
    switch (f) {
      case kWrite:
        env_.FailWrites(1);
        break;
      case kSync:
        env_.FailSyncs(1);
        break;
      case kRename:
        env_.FailRenames(1);
        break;
      case kDiskFull:
        env_.SetDiskSpace(20);
        break;
    }
    Status s = store_->Save(new_c, nullptr);
    env_.ClearFaults();
    EXPECT_FALSE(s.ok());
    ASSERT_TRUE(env_.SimulateCrash().ok());
    auto got = store_->Load("b1", nullptr);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSame(*got, old_c);
    EXPECT_EQ(*env_.GetChildren(repo_->root() + "/tmp"),
              std::vector<std::string>{});
  }
  // A new backup's failed save leaves no file at all.
  env_.FailRenames(1);
  EXPECT_FALSE(store_->Save(SmallCatalogue("b3"), nullptr).ok());
  env_.ClearFaults();
  ASSERT_TRUE(env_.SimulateCrash().ok());
  EXPECT_FALSE(*store_->Exists("b3"));
  EXPECT_EQ(*store_->List(), std::vector<std::string>{"b1"});
  // And a save that succeeded survives a crash.
  ASSERT_TRUE(store_->Save(new_c, nullptr).ok());
  ASSERT_TRUE(env_.SimulateCrash().ok());
  ExpectSame(*store_->Load("b1", nullptr), new_c);
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// A backup's catalogue lives and dies with it (Repository::DeleteBackup).
TEST_F(CatalogueStoreTest, DeletingTheBackupDeletesItsCatalogue) {
  BackupData("keep", std::string(1 << 20, 'k'));
  BackupData("drop", std::string(1 << 20, 'd'));
  ASSERT_TRUE(store_->Save(SmallCatalogue("keep"), nullptr).ok());
  ASSERT_TRUE(store_->Save(SmallCatalogue("drop"), nullptr).ok());
  ASSERT_TRUE(repo_->DeleteBackup("drop").ok());
  EXPECT_FALSE(*store_->Exists("drop"));
  EXPECT_TRUE(*store_->Exists("keep"));
  // A backup without a catalogue deletes as before.
  BackupData("bare", std::string(1 << 20, 'b'));
  EXPECT_TRUE(repo_->DeleteBackup("bare").ok());
  EXPECT_TRUE(absl::IsNotFound(repo_->DeleteBackup("bare")));
}

}  // namespace
}  // namespace cairn
