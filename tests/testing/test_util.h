// Helpers shared by Cairn's tests: scratch directories and test data.
#ifndef CAIRN_TESTS_TESTING_TEST_UTIL_H_
#define CAIRN_TESTS_TESTING_TEST_UTIL_H_

#include <cstdint>
#include <string>

namespace cairn::testing {

// A fresh empty directory under $TMPDIR (or /tmp), removed with its
// contents when the object is destroyed.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Deterministic pseudo-random bytes (xorshift) for test content.
std::string PseudoRandomBytes(size_t n, uint64_t seed);
// Compressible text-like bytes.
std::string TextLikeBytes(size_t n, uint64_t seed);

void WriteFileOrDie(const std::string& path, const std::string& data);
std::string ReadFileOrDie(const std::string& path);
// Flips one byte of a file in place.
void FlipByteOrDie(const std::string& path, uint64_t offset);

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_TEST_UTIL_H_
