// common/sparse_file.h: data extents of a sparse file, received into a
// temporary file, verified by SHA-256 and published crash-safely.
#include "common/sparse_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/coding.h"
#include "common/crypto.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

using testing::PseudoRandomBytes;
using testing::ScratchDir;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Sha256Hex(std::string_view data) {
  crypto::Digest d = crypto::Sha256(data);
  return HexEncode(
      std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

// A 64 MiB file with data at 0, at 20 MiB and at its last bytes, holes
// between.
std::string MakeSparse(const ScratchDir& dir) {
  std::string path = dir.Sub("sparse.img");
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  EXPECT_GE(fd, 0);
  std::string a = PseudoRandomBytes(3 << 20, 1);
  std::string b = PseudoRandomBytes(1 << 20, 2);
  EXPECT_EQ(::pwrite(fd, a.data(), a.size(), 0), ssize_t(a.size()));
  EXPECT_EQ(::pwrite(fd, b.data(), b.size(), 20 << 20), ssize_t(b.size()));
  EXPECT_EQ(::pwrite(fd, "end", 3, (64 << 20) - 3), 3);
  ::close(fd);
  return path;
}

TEST(SparseFileTest, ExtentsRoundTripIntoASparseVerifiedCopy) {
  ScratchDir dir;
  std::string src = MakeSparse(dir);
  std::string dest = dir.Sub("copy.img");
  auto receiver = SparseFileReceiver::Create(dest, false);
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  std::vector<uint64_t> offsets;
  auto summary = ReadDataExtents(src, 1 << 20,
                                 [&](uint64_t offset, std::string_view data) {
                                   EXPECT_LE(data.size(), 1u << 20);
                                   offsets.push_back(offset);
                                   return (*receiver)->Write(offset, data);
                                 });
  ASSERT_TRUE(summary.ok()) << summary.status();
  std::string content = ReadAll(src);
  EXPECT_EQ(summary->file_size, 64u << 20);
  EXPECT_EQ(summary->sha256_hex, Sha256Hex(content));
  // Only the data was read: far less than the file.
  EXPECT_LT(summary->data_bytes, 16u << 20);
  EXPECT_GE(summary->data_bytes, (4u << 20) + 3);
  EXPECT_EQ(offsets.front(), 0u);
  EXPECT_FALSE(std::filesystem::exists(dest)) << "published before Commit";
  ASSERT_TRUE(
      (*receiver)->Commit(summary->file_size, summary->sha256_hex).ok());
  EXPECT_EQ(ReadAll(dest), content);
  struct stat st;
  ASSERT_EQ(::stat(dest.c_str(), &st), 0);
  EXPECT_LT(uint64_t(st.st_blocks) * 512, 16u << 20) << "the copy is sparse";
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  receiver->reset();
  EXPECT_EQ(ReadAll(dest), content) << "dropping a committed receiver";
}

TEST(SparseFileTest, DamagedOrIncompleteTransfersPublishNothing) {
  ScratchDir dir;
  std::string dest = dir.Sub("copy.img");
  {
    auto r = SparseFileReceiver::Create(dest, false);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE((*r)->Write(0, "hello").ok());
    // Out of order and overlapping extents are refused.
    EXPECT_TRUE(absl::IsInvalidArgument((*r)->Write(2, "x")));
    Status s = (*r)->Commit(10, Sha256Hex("hellq") /* wrong */);
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  }
  {
    auto r = SparseFileReceiver::Create(dest, false);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE((*r)->Write(4, "data").ok());
    EXPECT_TRUE(absl::IsInvalidArgument((*r)->Commit(6, "")));
    // Dropped without a commit (an interrupted transfer).
  }
  EXPECT_FALSE(std::filesystem::exists(dest));
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    ADD_FAILURE() << "left behind: " << e.path();
  }
}

TEST(SparseFileTest, AnExistingDestinationIsKeptUnlessOverwriting) {
  ScratchDir dir;
  std::string dest = dir.Sub("copy.img");
  std::ofstream(dest) << "precious";
  EXPECT_TRUE(
      absl::IsAlreadyExists(SparseFileReceiver::Create(dest, false).status()));
  EXPECT_TRUE(absl::IsNotFound(
      SparseFileReceiver::Create(dir.Sub("no/such/dir/f"), false).status()));
  auto r = SparseFileReceiver::Create(dest, true);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE((*r)->Write(0, "new").ok());
  ASSERT_TRUE((*r)->Commit(3, Sha256Hex("new")).ok());
  EXPECT_EQ(ReadAll(dest), "new");

  // Created meanwhile: the rename refuses to replace it.
  std::string late = dir.Sub("late.img");
  auto r2 = SparseFileReceiver::Create(late, false);
  ASSERT_TRUE(r2.ok());
  std::ofstream(late) << "someone else";
  ASSERT_TRUE((*r2)->Write(0, "mine").ok());
  EXPECT_TRUE(absl::IsAlreadyExists((*r2)->Commit(4, Sha256Hex("mine"))));
  EXPECT_EQ(ReadAll(late), "someone else");
}

}  // namespace
}  // namespace cairn
