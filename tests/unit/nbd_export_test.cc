// Unit tests of the NBD export's pieces that run without nbdkit: plugin
// parameters, key handover, ExportedImage reads/extents/errors on a real
// repository, and NbdExport's argument vector and error paths.
#include "media_agent/nbd_export.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>

#include "agent/backup_pipeline.h"
#include "common/coding.h"
#include "common/data_key.h"
#include "common/strings.h"
#include "media_agent/exported_image.h"
#include "media_agent/key_handover.h"
#include "media_agent/nbd_plugin_config.h"
#include "media_agent/read_only_store.h"
#include "media_agent/repository.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

constexpr uint32_t kChunk = 64 << 10;

std::string TestSecret(char seed) {
  std::string s(DataKey::kSize, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(seed + 7 * i);
  return s;
}

void WriteMode(const std::string& path, const std::string& data, int mode) {
  testing::WriteFileOrDie(path, data);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

// ---- Plugin parameters ------------------------------------------------------

TEST(NbdPluginConfigTest, ParsesEveryParameter) {
  NbdPluginConfig c;
  ASSERT_TRUE(ApplyNbdPluginParam(&c, "store", "/srv/repo").ok());
  ASSERT_TRUE(ApplyNbdPluginParam(&c, "backup", "pc1-full").ok());
  ASSERT_TRUE(ApplyNbdPluginParam(&c, "key-fd", "3").ok());
  ASSERT_TRUE(ApplyNbdPluginParam(&c, "lock", "none").ok());
  ASSERT_TRUE(ApplyNbdPluginParam(&c, "cache", "64M").ok());
  EXPECT_FALSE(c.parallel_requests);
  ASSERT_TRUE(ApplyNbdPluginParam(&c, "parallel", "true").ok());
  EXPECT_TRUE(c.parallel_requests);
  EXPECT_EQ(c.store, "/srv/repo");
  EXPECT_EQ(c.backup_id, "pc1-full");
  EXPECT_EQ(c.key_fd, 3);
  EXPECT_FALSE(c.lock_store);
  EXPECT_EQ(c.cache_bytes, 64u << 20);
  EXPECT_TRUE(ValidateNbdPluginConfig(c).ok());
}

TEST(NbdPluginConfigTest, RefusesKeyMaterialOnTheCommandLine) {
  for (const char* name : {"key", "secret", "data-key", "password"}) {
    NbdPluginConfig c;
    Status s = ApplyNbdPluginParam(&c, name, std::string(64, 'a'));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(s.message().find("/proc/PID/cmdline"), absl::string_view::npos)
        << s;
    EXPECT_EQ(s.message().find(std::string(64, 'a')), absl::string_view::npos);
  }
}

TEST(NbdPluginConfigTest, RefusesBadParameters) {
  NbdPluginConfig c;
  EXPECT_EQ(ApplyNbdPluginParam(&c, "colour", "red").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyNbdPluginParam(&c, "key-fd", "0").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyNbdPluginParam(&c, "key-fd", "3x").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyNbdPluginParam(&c, "key-fd", "-5").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyNbdPluginParam(&c, "parallel", "yes please").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyNbdPluginParam(&c, "lock", "maybe").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyNbdPluginParam(&c, "cache", "0").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyNbdPluginParam(&c, "cache", "12T").code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(ApplyNbdPluginParam(&c, "store", "a").ok());
  EXPECT_EQ(ApplyNbdPluginParam(&c, "store", "b").code(),
            absl::StatusCode::kInvalidArgument);  // repeated
}

TEST(NbdPluginConfigTest, ValidatesTheWhole) {
  NbdPluginConfig c;
  EXPECT_EQ(ValidateNbdPluginConfig(c).code(),
            absl::StatusCode::kInvalidArgument);  // no store
  c.store = "/r";
  EXPECT_EQ(ValidateNbdPluginConfig(c).code(),
            absl::StatusCode::kInvalidArgument);  // no backup
  c.backup_id = "../../etc/passwd";
  EXPECT_EQ(ValidateNbdPluginConfig(c).code(),
            absl::StatusCode::kInvalidArgument);
  c.backup_id = "b1";
  c.key_fd = 3;
  c.key_file = "/k";
  Status s = ValidateNbdPluginConfig(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("exclude"), absl::string_view::npos);
}

TEST(NbdPluginConfigTest, ParsesSizes) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("8K"), 8192u);
  EXPECT_EQ(*ParseByteSize("1G"), 1u << 30);
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("M").ok());
  EXPECT_FALSE(ParseByteSize("99999999999999999999").ok());
}

// ---- Key handover
// -------------------------------------------------------------

TEST(KeyHandoverTest, PipeRoundTripClosesTheDescriptor) {
  std::string secret = TestSecret(1);
  auto fd = MakeKeyPipe(secret);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_GT(*fd, 2);
  EXPECT_TRUE(::fcntl(*fd, F_GETFD) & FD_CLOEXEC);
  auto got = ReadKeySecretFromFd(*fd);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, secret);
  errno = 0;
  EXPECT_EQ(::fcntl(*fd, F_GETFD), -1);  // closed after reading
  EXPECT_EQ(errno, EBADF);
}

TEST(KeyHandoverTest, RefusesBadDescriptors) {
  EXPECT_EQ(ReadKeySecretFromFd(0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadKeySecretFromFd(2).status().code(),
            absl::StatusCode::kInvalidArgument);
  Status closed = ReadKeySecretFromFd(987).status();
  EXPECT_EQ(closed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(closed.message().find("not open"), absl::string_view::npos);
  EXPECT_EQ(MakeKeyPipe("short").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(KeyHandoverTest, RefusesMalformedOrOversizedData) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ASSERT_EQ(::write(p[1], "not a key\n", 10), 10);
  ::close(p[1]);
  Status s = ReadKeySecretFromFd(p[0]).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);

  testing::ScratchDir dir;
  std::string big = dir.Sub("big");
  WriteMode(big, std::string(5000, 'a'), 0600);
  int fd = ::open(big.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  s = ReadKeySecretFromFd(fd).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("more than"), absl::string_view::npos);
}

TEST(KeyHandoverTest, KeyFileChecksModeTypeAndSymlinks) {
  testing::ScratchDir dir;
  std::string secret = TestSecret(9);
  std::string hex = HexEncode(secret);
  std::string good = dir.Sub("good.key");
  WriteMode(good, hex + "\n", 0600);
  auto got = ReadKeySecretFromFile(good);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, secret);

  std::string open_key = dir.Sub("open.key");
  WriteMode(open_key, hex + "\n", 0644);
  Status s = ReadKeySecretFromFile(open_key).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("chmod 600"), absl::string_view::npos);

  std::string link = dir.Sub("link.key");
  ASSERT_EQ(::symlink(good.c_str(), link.c_str()), 0);
  s = ReadKeySecretFromFile(link).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("symbolic link"), absl::string_view::npos);

  s = ReadKeySecretFromFile(dir.path()).status();  // a directory
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(ReadKeySecretFromFile(dir.Sub("absent")).status().code(),
            absl::StatusCode::kNotFound);

  std::string bad = dir.Sub("bad.key");
  WriteMode(bad, hex.substr(0, 63) + "\n", 0600);
  s = ReadKeySecretFromFile(bad).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().find(hex.substr(0, 20)), absl::string_view::npos)
      << "error messages must not echo key material";
}

TEST(KeyHandoverTest, WipeSecretClears) {
  std::string s = TestSecret(3);
  WipeSecret(&s);
  EXPECT_TRUE(s.empty());
}

// ---- ExportedImage on a real repository
// ---------------------------------------

struct ImageParam {
  bool encrypt;
};

class ExportedImageTest : public ::testing::TestWithParam<ImageParam> {
 protected:
  void SetUp() override {
    RepositoryOptions o;
    o.create_if_missing = true;
    auto repo = Repository::Open(dir_.Sub("repo"), o);
    ASSERT_TRUE(repo.ok()) << repo.status();
    if (GetParam().encrypt) {
      secret_ = TestSecret(5);
      key_ = std::make_unique<DataKey>(*DataKey::FromSecret(secret_));
    }
    // data | zeros (3 chunks) | data | zeros | odd tail of data
    image_data_ = testing::TextLikeBytes(3 * kChunk + 100, 1);
    image_data_ += std::string(3 * kChunk - 100, '\0');
    image_data_ += testing::PseudoRandomBytes(2 * kChunk, 2);
    image_data_ += std::string(2 * kChunk, '\0');
    image_data_ += testing::PseudoRandomBytes(12345, 3);
    testing::WriteFileOrDie(dir_.Sub("image"), image_data_);
    BackupRequest req;
    req.source_path = dir_.Sub("image");
    req.source_name = "host-a";
    req.backup_id = "b1";
    req.chunk_size = kChunk;
    req.key = key_.get();
    req.threads = 2;
    auto session = (*repo)->BeginBackup();
    auto r = RunBackup(req, session.get());
    ASSERT_TRUE(r.ok()) << r.status();
  }

  std::unique_ptr<DataKey> Key() const {
    if (!key_) return nullptr;
    return std::make_unique<DataKey>(*DataKey::FromSecret(secret_));
  }

  std::unique_ptr<ExportedImage> OpenImage(uint64_t cache_bytes = 1 << 30) {
    auto source = ReadOnlyStore::Open(dir_.Sub("repo"), Env::Default());
    EXPECT_TRUE(source.ok()) << source.status();
    auto image =
        ExportedImage::Open(*std::move(source), Key(), "b1", cache_bytes);
    EXPECT_TRUE(image.ok()) << image.status();
    return image.ok() ? *std::move(image) : nullptr;
  }

  uint64_t DataChunks() const {
    uint64_t n = 0;
    for (uint64_t i = 0; i * kChunk < image_data_.size(); ++i) {
      std::string_view c(
          image_data_.data() + i * kChunk,
          std::min<size_t>(kChunk, image_data_.size() - i * kChunk));
      if (!IsAllZero(c)) ++n;
    }
    return n;
  }

  testing::ScratchDir dir_;
  std::string secret_;
  std::unique_ptr<DataKey> key_;
  std::string image_data_;
};

TEST_P(ExportedImageTest, ReadsEveryRangeByteExact) {
  auto image = OpenImage();
  ASSERT_NE(image, nullptr);
  ASSERT_EQ(image->size(), image_data_.size());
  std::string all(image_data_.size(), 'x');
  ASSERT_TRUE(image->Read(0, all.size(), all.data()).ok());
  EXPECT_TRUE(all == image_data_);
  // Unaligned ranges across chunk boundaries, including the tail.
  for (uint64_t off :
       {0ull, 1ull, 65535ull, 65536ull, 200000ull,
        static_cast<unsigned long long>(image_data_.size()) - 777}) {
    for (size_t len : {1ul, 4096ul, 70000ul, 300000ul}) {
      if (off + len > image_data_.size()) continue;
      std::string buf(len, 'x');
      ASSERT_TRUE(image->Read(off, len, buf.data()).ok()) << off;
      EXPECT_TRUE(buf == image_data_.substr(off, len)) << off << "+" << len;
    }
  }
  std::string buf(10, 'x');
  EXPECT_EQ(image->Read(image_data_.size() - 5, 10, buf.data()).code(),
            absl::StatusCode::kOutOfRange);
}

TEST_P(ExportedImageTest, ReportsZeroChunksAsZeroExtents) {
  auto image = OpenImage();
  ASSERT_NE(image, nullptr);
  auto runs = image->Extents(0, image->size());
  ASSERT_TRUE(runs.ok()) << runs.status();
  // Chunks: 0-3 data (chunk 3 holds 100 bytes of text), 4-5 zero, 6-7 data,
  // 8-9 zero, 10 data (tail).
  std::vector<ExportedImage::Extent> want = {{0, 4 * kChunk, false},
                                             {4 * kChunk, 2 * kChunk, true},
                                             {6 * kChunk, 2 * kChunk, false},
                                             {8 * kChunk, 2 * kChunk, true},
                                             {10 * kChunk, 12345, false}};
  EXPECT_EQ(*runs, want);
  uint64_t total = 0;
  for (const auto& r : *runs) total += r.length;
  EXPECT_EQ(total, image->size());

  // A range inside a zero run, and the first-only form.
  auto inner = image->Extents(4 * kChunk + 10, 100);
  ASSERT_TRUE(inner.ok());
  EXPECT_EQ(*inner,
            (std::vector<ExportedImage::Extent>{{4 * kChunk + 10, 100, true}}));
  auto first = image->Extents(kChunk, image->size(), /*first_only=*/true);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first,
            (std::vector<ExportedImage::Extent>{{kChunk, 3 * kChunk, false}}));
  EXPECT_EQ(image->Extents(image->size(), 1).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST_P(ExportedImageTest, ConcurrentReadersDecodeEachChunkOnce) {
  auto image = OpenImage();
  ASSERT_NE(image, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      // Every thread reads the whole image in 4 KiB requests, in its own
      // order, like parallel NBD requests.
      const size_t step = 4096;
      std::string buf(step, '\0');
      for (uint64_t i = 0; i * step < image_data_.size(); ++i) {
        uint64_t block =
            (i * 7 + t * 13) % ((image_data_.size() + step - 1) / step);
        uint64_t off = block * step;
        size_t len = std::min<size_t>(step, image_data_.size() - off);
        if (!image->Read(off, len, buf.data()).ok() ||
            std::string_view(buf.data(), len) !=
                std::string_view(image_data_).substr(off, len)) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(image->chunk_decodes(), DataChunks());
}

TEST_P(ExportedImageTest, CacheStaysWithinItsBound) {
  auto image = OpenImage(/*cache_bytes=*/2 * kChunk);
  ASSERT_NE(image, nullptr);
  std::string all(image_data_.size(), 'x');
  ASSERT_TRUE(image->Read(0, all.size(), all.data()).ok());
  EXPECT_TRUE(all == image_data_);
  EXPECT_LE(image->cached_bytes(), 2 * kChunk);
  ASSERT_TRUE(image->Read(0, all.size(), all.data()).ok());
  EXPECT_TRUE(all == image_data_);
  EXPECT_EQ(image->chunk_decodes(), 2 * DataChunks());  // nothing left
}

TEST_P(ExportedImageTest, DamagedChunkIsDataLossNamingTheChunkAndEio) {
  auto image = OpenImage();
  ASSERT_NE(image, nullptr);
  const ChunkId id = image->manifest().chunks[6];
  auto store = ReadOnlyStore::Open(dir_.Sub("repo"), Env::Default());
  std::string described = (*store)->DescribeChunk(id);
  std::string path = described.substr(std::string("file ").size());
  testing::FlipByteOrDie(path, 60);
  std::string buf(4096, 'x');
  Status s = image->Read(6 * kChunk + 10, buf.size(), buf.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find(id.ToHex()), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("chunk 6"), absl::string_view::npos) << s;
  EXPECT_EQ(StatusToErrno(s), EIO);
  // Other chunks still read; the error is not cached.
  EXPECT_TRUE(image->Read(0, buf.size(), buf.data()).ok());
  EXPECT_EQ(image->Read(6 * kChunk, 1, buf.data()).code(),
            absl::StatusCode::kDataLoss);

  ASSERT_EQ(::unlink(path.c_str()), 0);
  s = image->Read(6 * kChunk, 1, buf.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_EQ(StatusToErrno(s), EIO);
}

TEST_P(ExportedImageTest, OpeningErrorsAreClear) {
  auto source = [&] {
    return *ReadOnlyStore::Open(dir_.Sub("repo"), Env::Default());
  };
  auto unknown = ExportedImage::Open(source(), Key(), "nope");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  auto other_key =
      std::make_unique<DataKey>(*DataKey::FromSecret(TestSecret(77)));
  if (GetParam().encrypt) {
    auto no_key = ExportedImage::Open(source(), nullptr, "b1");
    EXPECT_EQ(no_key.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(no_key.status().message().find("encrypted"),
              absl::string_view::npos);
    auto wrong = ExportedImage::Open(source(), std::move(other_key), "b1");
    EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition)
        << wrong.status();
  }
  EXPECT_EQ(
      ReadOnlyStore::Open(dir_.Sub("nothing"), Env::Default()).status().code(),
      absl::StatusCode::kNotFound);
}

TEST_P(ExportedImageTest, PluginConfigOpensThroughKeyPipeAndLock) {
  NbdPluginConfig c;
  c.store = dir_.Sub("repo");
  c.backup_id = "b1";
  struct stat pipe_st = {};
  if (GetParam().encrypt) {
    c.key_fd = *MakeKeyPipe(secret_);
    ASSERT_EQ(::fstat(c.key_fd, &pipe_st), 0);
  }
  auto image = OpenExportedImage(c);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ((*image)->size(), image_data_.size());
  if (c.key_fd >= 0) {
    // Closed by the reader (the number may have been reused since).
    struct stat now = {};
    bool same = ::fstat(c.key_fd, &now) == 0 && now.st_ino == pipe_st.st_ino &&
                now.st_dev == pipe_st.st_dev;
    EXPECT_FALSE(same);
  }
  // lock=exclusive while the repository is locked (by the open image's
  // Repository) fails clearly; lock=none reads anyway.
  NbdPluginConfig second = c;
  if (GetParam().encrypt) second.key_fd = *MakeKeyPipe(secret_);
  auto locked = OpenExportedImage(second);
  EXPECT_EQ(locked.status().code(), absl::StatusCode::kFailedPrecondition)
      << locked.status();
  EXPECT_NE(locked.status().message().find("locked"), absl::string_view::npos);
  second.lock_store = false;
  if (GetParam().encrypt) second.key_fd = *MakeKeyPipe(secret_);
  auto shared = OpenExportedImage(second);
  ASSERT_TRUE(shared.ok()) << shared.status();
  std::string buf(1000, 'x');
  ASSERT_TRUE((*shared)->Read(5000, buf.size(), buf.data()).ok());
  EXPECT_EQ(buf, image_data_.substr(5000, 1000));
}

INSTANTIATE_TEST_SUITE_P(PlainAndEncrypted, ExportedImageTest,
                         ::testing::Values(ImageParam{false}, ImageParam{true}),
                         [](const auto& info) {
                           return info.param.encrypt ? "Encrypted" : "Plain";
                         });

TEST(StatusToErrnoTest, MapsCodes) {
  EXPECT_EQ(StatusToErrno(absl::DataLossError("x")), EIO);
  EXPECT_EQ(StatusToErrno(absl::NotFoundError("x")), EIO);
  EXPECT_EQ(StatusToErrno(absl::OutOfRangeError("x")), EINVAL);
  EXPECT_EQ(StatusToErrno(absl::ResourceExhaustedError("x")), ENOMEM);
  EXPECT_EQ(StatusToErrno(absl::PermissionDeniedError("x")), EPERM);
  EXPECT_EQ(StatusToErrno(absl::UnimplementedError("x")), ENOTSUP);
}

// ---- NbdExport without starting nbdkit
// ----------------------------------------

NbdLaunchPaths Paths(bool tls) {
  NbdLaunchPaths p;
  p.nbdkit = "/usr/sbin/nbdkit";
  p.plugin = "/opt/cairn/nbdkit-cairn-plugin.so";
  p.store = "/srv/repo";
  p.socket = "/run/x/nbd.sock";
  p.pid_file = "/run/x/nbdkit.pid";
  if (tls) p.tls_certificates = "/run/x/tls";
  return p;
}

TEST(NbdExportArgvTest, KeyTravelsOnlyAsADescriptorNumber) {
  NbdExportOptions o;
  o.store = "/srv/repo";
  o.backup_id = "pc1-full";
  o.key_secret = TestSecret(11);
  std::vector<std::string> argv = NbdExport::BuildArgv(o, Paths(false));
  std::string hex = HexEncode(o.key_secret);
  bool has_key_fd = false;
  for (const auto& a : argv) {
    EXPECT_EQ(a.find(o.key_secret), std::string::npos);
    EXPECT_EQ(a.find(hex), std::string::npos);
    EXPECT_EQ(a.find(hex.substr(0, 16)), std::string::npos);
    EXPECT_NE(a.rfind("key=", 0), 0u);
    EXPECT_NE(a.rfind("key-file=", 0), 0u);
    if (a == "key-fd=3") has_key_fd = true;
  }
  EXPECT_TRUE(has_key_fd);
  EXPECT_EQ(argv[0], "/usr/sbin/nbdkit");
  auto has = [&](const std::string& s) {
    return std::find(argv.begin(), argv.end(), s) != argv.end();
  };
  EXPECT_TRUE(has("--readonly"));
  EXPECT_TRUE(has("--foreground"));
  EXPECT_TRUE(has("--exit-with-parent"));
  EXPECT_TRUE(has("store=/srv/repo"));
  EXPECT_TRUE(has("backup=pc1-full"));
  EXPECT_FALSE(has("lock=none"));
  EXPECT_FALSE(has("--tls=require"));
  // The plugin comes before its parameters.
  auto plugin =
      std::find(argv.begin(), argv.end(), "/opt/cairn/nbdkit-cairn-plugin.so");
  auto store = std::find(argv.begin(), argv.end(), "store=/srv/repo");
  EXPECT_LT(plugin, store);
}

TEST(NbdExportArgvTest, OptionsWithoutKeyAndWithTls) {
  NbdExportOptions o;
  o.store = "/srv/repo";
  o.backup_id = "b";
  o.lock_store = false;
  o.cache_bytes = 1 << 20;
  o.threads = 4;
  o.parallel_requests = true;
  std::vector<std::string> argv = NbdExport::BuildArgv(o, Paths(true));
  auto has = [&](const std::string& s) {
    return std::find(argv.begin(), argv.end(), s) != argv.end();
  };
  EXPECT_FALSE(has("key-fd=3"));
  EXPECT_TRUE(has("lock=none"));
  EXPECT_TRUE(has("cache=1048576"));
  EXPECT_TRUE(has("--threads=4"));
  EXPECT_TRUE(has("parallel=true"));
  EXPECT_TRUE(has("--tls=require"));
  EXPECT_TRUE(has("--tls-certificates=/run/x/tls"));
  EXPECT_TRUE(has("--tls-verify-peer"));
}

TEST(NbdExportTest, StartRefusesBadOptionsAndMissingPrograms) {
  NbdExportOptions o;
  EXPECT_EQ(NbdExport::Start(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.store = "/srv/repo";
  o.backup_id = "../x";
  EXPECT_EQ(NbdExport::Start(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.backup_id = "b1";
  o.key_secret = "short";
  EXPECT_EQ(NbdExport::Start(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.key_secret.clear();
  o.nbdkit_path = "/nonexistent/nbdkit";
  Status s = NbdExport::Start(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("nbdkit"), absl::string_view::npos);
  o.nbdkit_path = "/bin/sh";  // exists; the plugin does not
  o.plugin_path = "/nonexistent/plugin.so";
  s = NbdExport::Start(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("plugin"), absl::string_view::npos);
}

TEST(NbdExportTest, RecoversThePluginStatusFromTheLog) {
  std::string log =
      "nbdkit: debug: something\n"
      "nbdkit: cairn[1]: error: [NOT_FOUND] cannot export backup 'x' of /r: "
      "no backup 'x'\n";
  Status s = StatusFromNbdkitLog(log, absl::UnavailableError("died"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "cannot export backup 'x' of /r: no backup 'x'");
  s = StatusFromNbdkitLog("nbdkit: error: cannot open plugin\n",
                          absl::UnavailableError("nbdkit died"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("cannot open plugin"), absl::string_view::npos);
}

}  // namespace
}  // namespace cairn
