#include "tests/testing/test_util.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace cairn::testing {

ScratchDir::ScratchDir() {
  const char* tmp = getenv("TMPDIR");
  std::string templ = std::string(tmp ? tmp : "/tmp") + "/cairn-test-XXXXXX";
  char* p = mkdtemp(templ.data());
  if (p == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    std::abort();
  }
  path_ = p;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string PseudoRandomBytes(size_t n, uint64_t seed) {
  std::string out(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    for (size_t k = 0; k < 8 && i + k < n; ++k)
      out[i + k] = static_cast<char>(x >> (8 * k));
  }
  return out;
}

std::string TextLikeBytes(size_t n, uint64_t seed) {
  static const char* kWords[] = {"cairn ",    "backup ", "restore ", "chunk ",
                                 "manifest ", "media ",  "agent ",   "server ",
                                 "\n",        "kernel "};
  std::string out;
  out.reserve(n);
  uint64_t x = seed + 7;
  while (out.size() < n) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    out += kWords[(x >> 33) % 10];
  }
  out.resize(n);
  return out;
}

void WriteFileOrDie(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!f) {
    ADD_FAILURE() << "cannot write " << path;
    std::abort();
  }
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    ADD_FAILURE() << "cannot read " << path;
    std::abort();
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void FlipByteOrDie(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
  if (!f) {
    ADD_FAILURE() << "cannot flip byte in " << path;
    std::abort();
  }
}

}  // namespace cairn::testing
